"""Issue 19, what a newcomer hit in module 2's schema editor: an empty preset picker while a
preset was loaded, validator jargon in errors, old answers above a new error, and fixes that
named Python calls inside the widget.

Driven through the widget's public surface (controls, check_message, status, answers,
result). The server is a stand-in client: one answer, then a failure, as a stopped server.
"""

from __future__ import annotations

import re

import pytest

from lab_helpers import structured
from lab_helpers.structured.client import StructuredResult
from lab_helpers.structured.editor import SchemaEditorModel
from lab_helpers.structured.verdicts import Verdict
from lab_helpers.widgets import SchemaEditor

PYTHON_CALL = re.compile(r"\b(structured|StructuredClient|SchemaEditorModel)[.(]")


class OneAnswerThenDown:
    """Answers the first comparison, then fails like a server that stopped."""

    def __init__(self) -> None:
        self.calls = 0

    def compare(self, prompt: str, constraint: object, *, max_tokens: int | None = None
                ) -> tuple[StructuredResult, StructuredResult]:
        self.calls += 1
        if self.calls > 1:
            raise structured.StructuredError("The server stopped answering.",
                                             fix="vllm-lab up")
        ok = Verdict(True, "one of the choices")
        return (StructuredResult(prompt, "positive", True, ok, 0.1, 1, "stop"),
                StructuredResult(prompt, "It is positive", False, Verdict(False, "no"), 0.2,
                                 4, "stop"))


def editor(client: object | None = None) -> SchemaEditor:
    return SchemaEditor(SchemaEditorModel(client))  # type: ignore[arg-type]


def test_the_preset_picker_shows_the_loaded_preset_then_custom_once_edited():
    widget = editor()
    assert widget.controls.preset.value == "Support ticket (JSON)"  # was empty (None)
    widget.controls.preset.value = "Ticket ID (regex)"
    assert widget.controls.preset.value == "Ticket ID (regex)"
    widget.controls.text.value += "x"
    assert widget.controls.preset.value == "Custom"
    assert widget.model.text.endswith("x")  # showing "Custom" loaded nothing over the edit
    widget.controls.preset.value = "Ticket ID (regex)"  # picking it again loads it again
    assert not widget.model.text.endswith("x")


@pytest.mark.parametrize("schema, words", [
    ('{"type": "object", "properties": {"p": {"type": "strin"}}}',
     ['"properties" → "p" → "type"', '"strin" is not a type', '"string"']),
    ('{"type": "object", "required": "p"}', ['"required"', "list in square brackets"]),
    ('{"type": "integer", "minimum": "3"}', ['"minimum"', "number without quotes"]),
])
def test_an_invalid_schema_is_explained_in_plain_words(schema, words):
    widget = editor()
    widget.controls.text.value = schema
    message = widget.check_message
    assert "✘" in message
    for word in words:
        assert word.replace('"', "&quot;") in message, (word, message)
    for jargon in ("Validator", "keyword 'anyOf'", "any of the given schemas", "rejects it"):
        assert jargon not in message


@pytest.mark.parametrize("mode, text", [
    ("json", '{"type": "object", "properties": {"p": {"type": "strin"}}}'),
    ("json", '{"type": "object", "requird": ["a"]}'),
    ("json", '{"$ref": "#/$defs/Missing"}'),
    ("json", "[1, 2]"),
    ("regex", ""),
    ("regex", "ACME(?=-)"),
    ("choice", "\n \n"),
    ("grammar", ""),
])
def test_fixes_inside_the_editor_say_what_to_change_not_what_to_call(mode, text):
    widget = editor()
    widget.controls.mode.value = mode
    widget.controls.text.value = text
    assert "✘" in widget.check_message and "Fix:" in widget.check_message
    assert not PYTHON_CALL.search(widget.check_message), widget.check_message
    widget.controls.run.click()
    assert "Fix:" in widget.status and not PYTHON_CALL.search(widget.status), widget.status


def test_a_new_run_clears_the_last_answers_before_it_fails():
    widget = editor(OneAnswerThenDown())
    widget.controls.preset.value = "Sentiment (choice)"
    widget.controls.run.click()
    assert widget.wait(10)
    assert "positive" in widget.answers[0] and widget.result is not None
    widget.controls.text.value = ""  # a malformed constraint: Run refuses it
    widget.controls.run.click()
    assert "✘" in widget.check_message and "Fix:" in widget.status
    assert widget.answers == ("", "") and widget.result is None
    widget.controls.preset.value = "Ticket ID (regex)"
    widget.controls.run.click()  # valid, but the server is down now
    assert widget.wait(10)
    assert "stopped answering" in widget.status
    assert widget.answers == ("", "") and widget.result is None


def test_max_tokens_below_one_is_refused_with_the_rule():
    widget = editor()
    widget.controls.max_tokens.value = 0
    assert widget.controls.max_tokens.value == widget.model.max_tokens >= 1
    assert "1 or more" in widget.status


def test_a_python_caller_keeps_the_python_fix():
    with pytest.raises(structured.InvalidChoice) as caught:
        structured.choice([])
    assert "structured.choice(" in caught.value.fix
