"""Structured-output builders, input checks and answer checks, without a server.

What the server does with these requests is tested against the real one in
tests/integration/test_structured.py.
"""

from __future__ import annotations

import json

import pytest

from lab_helpers import structured
from lab_helpers.errors import LabError
from lab_helpers.server import free_port
from lab_helpers.structured import (
    ConstraintError,
    InvalidChoice,
    InvalidGrammar,
    InvalidRegex,
    InvalidSchema,
    ServerUnreachable,
    StructuredClient,
    StructuredError,
)
from lab_helpers.structured.editor import SchemaEditorModel
from lab_helpers.structured.presets import (
    PRIORITIES,
    REPORT_GRAMMAR,
    REPORT_GRAMMAR_UNBOUNDED,
    TICKET_SCHEMA,
    TICKET_TYPES,
    US_PHONE_REGEX,
    SupportTicket,
    presets,
    support_messages,
)

GOOD_TICKET = {"ticket_type": "billing", "priority": "high", "summary": "Charged twice",
               "customer_sentiment": "negative", "requires_escalation": True}
REPORT = ("## REPORT START ##\n### Weekly numbers ###\n- 150 tickets resolved\n"
          "- 23 escalated\n### Quality ###\n- 94% CSAT\n## REPORT END ##")


# -- builders: only the fields vLLM 0.32 reads --------------------------------------------------


def test_json_schema_goes_in_response_format():
    kwargs = structured.json_schema(TICKET_SCHEMA, name="ticket").request_kwargs()
    assert kwargs == {"response_format": {"type": "json_schema", "json_schema": {
        "name": "ticket", "schema": TICKET_SCHEMA}}}


@pytest.mark.parametrize(("constraint", "field", "value"), [
    (structured.regex(r"[0-9]{3}"), "regex", r"[0-9]{3}"),
    (structured.choice(("yes", "no")), "choice", ["yes", "no"]),
    (structured.grammar('root ::= "a" | "b"'), "grammar", 'root ::= "a" | "b"'),
])
def test_other_modes_go_in_structured_outputs_with_exactly_one_key(constraint, field, value):
    kwargs = constraint.request_kwargs()
    assert kwargs == {"extra_body": {"structured_outputs": {field: value}}}
    json.dumps(kwargs)  # the openai client sends it as JSON


def test_no_builder_emits_the_ignored_guided_fields():
    for preset in presets().values():
        body = json.dumps(preset.constraint.request_kwargs())
        assert "guided_" not in body, preset.name


def test_compact_json_goes_as_a_grammar_without_free_whitespace():
    compact = structured.json_schema(TICKET_SCHEMA, compact=True)
    kwargs = compact.request_kwargs()
    ebnf = kwargs["extra_body"]["structured_outputs"]["grammar"]
    assert list(kwargs) == ["extra_body"] and "response_format" not in kwargs
    dense = json.dumps(GOOD_TICKET)  # one line, json.dumps's separators
    assert structured.grammar_accepts(ebnf, dense)[0]
    assert not structured.grammar_accepts(ebnf, json.dumps(GOOD_TICKET, indent=2))[0]
    assert not structured.grammar_accepts(ebnf, dense.replace("billing", "refund"))[0]
    assert compact.check(json.dumps(GOOD_TICKET, indent=2)).valid  # checked by the schema
    with pytest.raises(ConstraintError):
        structured.Constraint("regex", "[0-9]+", compact=True)


def test_a_pydantic_model_gives_the_same_constraint_as_the_dict():
    from_model = structured.json_schema(SupportTicket)
    assert from_model.name == "SupportTicket"
    props = from_model.spec["properties"]
    assert set(props) == set(TICKET_SCHEMA["properties"])
    assert props["priority"]["enum"] == PRIORITIES
    assert props["summary"]["maxLength"] == 100
    assert from_model.check(json.dumps(GOOD_TICKET)).valid
    assert not from_model.check(json.dumps({**GOOD_TICKET, "priority": "extreme"})).valid


def test_from_text_reads_what_an_editor_holds():
    assert structured.from_text("choice", "a\n\n b \n").spec == ("a", "b")
    assert structured.from_text("json", json.dumps(TICKET_SCHEMA)).spec == TICKET_SCHEMA
    assert structured.from_text("regex", "[a-z]+").spec == "[a-z]+"
    for preset in presets().values():  # every preset survives a round trip through its text
        again = structured.from_text(preset.mode, preset.constraint.as_text())
        assert again.spec == preset.constraint.spec


# -- malformed input: raised before anything is sent, saying what and where ---------------------

MALFORMED = [
    # (builder, spec, error class, text expected in `where`)
    (structured.json_schema, '{"type": "object",}', InvalidSchema, "line 1, column 19"),
    (structured.json_schema, '{"type": "object"', InvalidSchema, "line 1"),
    (structured.json_schema, {"type": "objekt"}, InvalidSchema, "$.type"),
    (structured.json_schema, {"type": "object", "required": "summary"}, InvalidSchema,
     "$.required"),
    (structured.json_schema, {"properties": {"a": {"type": "string", "maxLength": -1}}},
     InvalidSchema, "$.properties.a.maxLength"),
    (structured.json_schema, {"type": "object", "properties": {"a": "string"}}, InvalidSchema,
     "$.properties.a"),
    (structured.json_schema, {"type": "object", "properties": {"a": {"maxLenght": 3}}},
     InvalidSchema, "$.properties.a"),
    (structured.json_schema, {"type": "object", "requird": ["a"]}, InvalidSchema, "$"),
    (structured.json_schema, {}, InvalidSchema, "top level"),
    (structured.json_schema, ["type", "object"], InvalidSchema, "top level"),
    (structured.json_schema, {"type": "object", "default": {1, 2}}, InvalidSchema, "value"),
    (structured.json_schema, {"$ref": "#/definitions/missing"}, InvalidSchema, "$.$ref"),
    (structured.json_schema, {"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}},
                              "$defs": {"Yes": {"type": "string"}}}, InvalidSchema,
     "$.properties.a.$ref"),
    (structured.json_schema, {"type": "array", "items": {"$ref": "other.json#/x"}},
     InvalidSchema, "$.items.$ref"),
    (structured.regex, "ACME-[A-Z{4}", InvalidRegex, "position 5"),
    (structured.regex, "(abc", InvalidRegex, "position 0"),
    (structured.regex, "a{2,1}", InvalidRegex, "position"),
    (structured.regex, "", InvalidRegex, "pattern"),
    (structured.regex, r"ACME(?=-)", InvalidRegex, "position"),
    (structured.regex, r"(a)\1", InvalidRegex, "position"),
    (structured.regex, 42, InvalidRegex, "pattern"),
    (structured.choice, [], InvalidChoice, "choice list"),
    (structured.choice, "positive", InvalidChoice, "choice list"),
    (structured.choice, ["yes", ""], InvalidChoice, "item 2"),
    (structured.choice, ["yes", "no", "yes"], InvalidChoice, "item 3"),
    (structured.choice, ["yes", 1], InvalidChoice, "item 2"),
    (structured.grammar, "", InvalidGrammar, "grammar"),
    (structured.grammar, 'root ::= ("a"', InvalidGrammar, "line 1"),
    (structured.grammar, 'root ::= "a" missing', InvalidGrammar, "line 1, column 14"),
    (structured.grammar, 'report ::= "a"', InvalidGrammar, "line 1"),
    (structured.grammar, "start: \"a\" | \"b\"", InvalidGrammar, "grammar"),
    (structured.grammar, 'root ::= "a"\nsection ::= "### " [A-Z', InvalidGrammar, "line 2"),
]


@pytest.mark.parametrize(("builder", "spec", "error", "where"), MALFORMED,
                         ids=[f"{b.__name__}-{i}" for i, (b, *_rest) in enumerate(MALFORMED)])
def test_malformed_input_raises_what_and_where(builder, spec, error, where):
    with pytest.raises(error) as caught:
        builder(spec)
    exc = caught.value
    assert isinstance(exc, ConstraintError) and isinstance(exc, LabError)
    assert where in exc.where, (exc.where, exc.what)
    assert exc.what and exc.fix
    assert exc.mode == builder.__name__.replace("json_schema", "json")


def test_references_that_resolve_inside_the_schema_are_accepted():
    person = {"type": "object", "properties": {"name": {"type": "string"}},
              "required": ["name"]}
    for schema in ({"$defs": {"P": person}, "type": "object",
                    "properties": {"who": {"$ref": "#/$defs/P"}}},
                   {"definitions": {"P": person}, "$ref": "#/definitions/P"},
                   {"type": "object", "properties": {"a": {"type": "string"},
                                                     "b": {"$ref": "#/properties/a"}}}):
        assert structured.json_schema(schema).spec == schema


def test_there_are_at_least_fifteen_malformed_cases():
    assert len(MALFORMED) >= 15


def test_a_constraint_cannot_be_built_around_the_checks():
    with pytest.raises(InvalidChoice):
        structured.Constraint("choice", [])
    with pytest.raises(ConstraintError):
        structured.Constraint("guided_json", TICKET_SCHEMA)  # type: ignore[arg-type]
    with pytest.raises(InvalidSchema):
        structured.json_schema(TICKET_SCHEMA, name="a ticket!")


def test_regex_error_points_at_the_position():
    with pytest.raises(InvalidRegex) as caught:
        structured.regex("ACME-[A-Z{4}")
    assert caught.value.what.splitlines()[-1] == "       ^"


# -- verdicts ------------------------------------------------------------------------------------


def test_json_verdicts():
    ticket = structured.json_schema(TICKET_SCHEMA)
    ok = ticket.check(json.dumps(GOOD_TICKET))
    assert ok.valid and ok.parsed and ok.value == GOOD_TICKET
    missing = ticket.check(json.dumps({k: v for k, v in GOOD_TICKET.items() if k != "summary"}))
    assert not missing.valid and missing.parsed and "summary" in missing.reason
    wrong = ticket.check(json.dumps({**GOOD_TICKET, "ticket_type": "refund"}))
    assert not wrong.valid and "$.ticket_type" in wrong.reason
    long = ticket.check(json.dumps({**GOOD_TICKET, "summary": "x" * 101}))
    assert not long.valid and "$.summary" in long.reason
    fenced = ticket.check("```json\n" + json.dumps(GOOD_TICKET) + "\n```")
    assert not fenced.valid and not fenced.parsed and fenced.reason.startswith("not JSON")
    cut = ticket.check('{"ticket_type": "bil', finish_reason="length")
    assert not cut.valid and "max_tokens" in cut.reason


def test_extract_json_is_the_lenient_reader():
    assert structured.extract_json("Sure!\n```json\n{\"a\": 1}\n```") == {"a": 1}
    assert structured.extract_json('Here: {"a": 1} done') == {"a": 1}
    assert structured.extract_json("no json here") is None


def test_regex_verdicts_need_a_full_match():
    phone = structured.regex(US_PHONE_REGEX)
    assert phone.check("(555) 123-4567").valid
    assert not phone.check("(555) 123-4567 call me").valid
    assert not phone.check("5551234567").valid
    ticket_id = structured.regex(r"ACME-[A-Z]{4}-[0-9]{4}")
    verdict = ticket_id.check("ACME-ABCD-12345")
    assert not verdict.valid and "first 14 characters" in verdict.reason


def test_choice_verdicts_are_exact_membership():
    sentiment = structured.choice(["positive", "negative", "neutral"])
    assert sentiment.check("neutral").valid
    for text in ("Neutral", " neutral", "neutral.", "It is positive"):
        assert not sentiment.check(text).valid


def test_grammar_verdicts_use_the_same_grammar():
    report = structured.grammar(REPORT_GRAMMAR)
    assert report.check(REPORT).valid
    assert structured.grammar(REPORT_GRAMMAR_UNBOUNDED).check(REPORT).valid
    cut = report.check(REPORT.rsplit("##", 2)[0], finish_reason="length")
    assert not cut.valid and "incomplete" in cut.reason and "max_tokens" in cut.reason
    wrong = report.check(REPORT.replace("### Quality ###", "## Quality ##"))
    assert not wrong.valid and "rejected at character" in wrong.reason
    # The bound: four sections are one too many for REPORT_GRAMMAR, fine for the unbounded one.
    section = "### Extra ###\n- more\n"
    four = REPORT.replace("## REPORT END ##", section * 2 + "## REPORT END ##")
    assert not report.check(four).valid
    assert structured.grammar(REPORT_GRAMMAR_UNBOUNDED).check(four).valid
    long_bullet = REPORT.replace("- 23 escalated", "- " + "x" * 61)
    assert not report.check(long_bullet).valid


# -- client and editor without a server ------------------------------------------------------


class _DeadServer:
    """A server record whose port nothing listens on: a stopped server, without a fake API."""

    name = "dead"
    model_name = "smollm2-135m-instruct"

    def __init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{free_port()}"

    def client(self, **kwargs):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key="k", **kwargs)


def test_unreachable_server_raises_with_the_fix():
    gen = StructuredClient(_DeadServer(), max_tokens=8)  # type: ignore[arg-type]
    with pytest.raises(ServerUnreachable) as caught:
        gen.run("hello", structured.choice(["a", "b"]))
    assert "vllm-lab up" in caught.value.fix


def test_bad_input_to_the_client_is_refused_before_sending():
    gen = StructuredClient(_DeadServer(), max_tokens=8)  # type: ignore[arg-type]
    with pytest.raises(StructuredError, match="prompt is empty"):
        gen.run("  ", structured.choice(["a", "b"]))
    with pytest.raises(StructuredError, match="must be a Constraint"):
        gen.run("hi", {"guided_choice": ["a", "b"]})  # type: ignore[arg-type]
    with pytest.raises(StructuredError, match="max_tokens"):
        StructuredClient(_DeadServer(), max_tokens=0)  # type: ignore[arg-type]


def test_editor_checks_live_and_refuses_to_run_malformed_text():
    editor = SchemaEditorModel(StructuredClient(_DeadServer()))  # type: ignore[arg-type]
    assert editor.mode == "json" and editor.check()[0]
    for name, preset in editor.presets.items():
        editor.load_preset(name)
        assert editor.mode == preset.mode and editor.prompt and editor.check()[0], name
    editor.load_preset("Ticket ID (regex)")
    editor.text = "ACME-[A-Z{4}"
    ok, message = editor.check()
    assert not ok and "position 5" in message
    with pytest.raises(InvalidRegex):  # raised before the (dead) server is contacted
        editor.run()
    editor.mode = "choice"
    editor.text = "\n \n"
    assert not editor.check()[0]
    with pytest.raises(StructuredError, match="No preset"):
        editor.load_preset("nope")


def test_labelled_messages_use_the_schema_labels():
    messages = support_messages()
    assert len(messages) >= 20
    assert {m.ticket_type for m in messages} == set(TICKET_TYPES)
    assert {m.priority for m in messages} <= set(PRIORITIES)
    assert len({m.text for m in messages}) == len(messages)


def test_schema_editor_widget_validates_live_and_shows_errors_inside():
    from lab_helpers.widgets import SchemaEditor

    editor = SchemaEditor(StructuredClient(_DeadServer()))  # type: ignore[arg-type]
    assert "✔" in editor.check_message and editor.model.mode == "json"
    editor.controls.preset.value = "Report (grammar)"
    assert editor.model.mode == "grammar" and editor.controls.mode.value == "grammar"
    assert editor.model.text.startswith("root ::=") and "✔" in editor.check_message
    text = editor.controls.text
    text.value = text.value.replace("title ::=", "title :=")  # break rule 3
    assert "✘" in editor.check_message and "line 3" in editor.check_message
    editor.controls.run.click()  # refused before any request: no thread, the error in the widget
    assert not editor.busy and "does not parse" in editor.status
    editor.controls.preset.value = "Sentiment (choice)"
    editor.controls.run.click()  # valid constraint, dead server: the error shows in the widget
    assert editor.wait(30)
    assert "vllm-lab up" in editor.status and editor.result is None
    assert editor.controls.run.disabled is False
