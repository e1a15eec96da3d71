"""`StructuredResult.require_valid()`: the checked answer, or the lab's error saying why it does
not fit and what to change (module 2's troubleshooting section triggers it for real).

The results are built from real verdicts (the constraint's own check of the text), as the
client builds them from a server's answer."""

from __future__ import annotations

import pytest

from lab_helpers import structured
from lab_helpers.structured import InvalidAnswer, StructuredError, StructuredResult
from lab_helpers.structured.presets import TICKET_SCHEMA

TICKET = structured.json_schema(TICKET_SCHEMA, name="support_ticket")
WHOLE = ('{"ticket_type": "billing", "priority": "high", "summary": "Charged twice", '
         '"customer_sentiment": "negative", "requires_escalation": true}')


def result(text: str, finish: str, *, constrained: bool = True, tokens: int = 40,
           check: bool = True) -> StructuredResult:
    return StructuredResult(prompt="p", text=text, constrained=constrained,
                            verdict=TICKET.check(text, finish_reason=finish) if check else None,
                            latency_s=0.1, completion_tokens=tokens, finish_reason=finish)


def test_a_valid_answer_comes_back_parsed():
    assert result(WHOLE, "stop").require_valid()["priority"] == "high"


def test_an_answer_cut_at_max_tokens_says_to_give_more_room():
    with pytest.raises(InvalidAnswer) as err:
        result('{\n  "ticket_type": "billing",', "length", tokens=12).require_valid()
    assert "cut at max_tokens (12 tokens" in err.value.cause
    assert "max_tokens=128" in err.value.fix
    assert "not JSON" in err.value.what


def test_an_unconstrained_or_ignored_constraint_is_told_apart():
    with pytest.raises(InvalidAnswer) as err:
        result("Sure! Here is your ticket.", "stop", constrained=False).require_valid()
    assert "no constraint" in err.value.cause and "gen.run(prompt, constraint)" in err.value.fix
    with pytest.raises(InvalidAnswer) as err:
        result('{"ticket_type": "billing"}', "stop").require_valid()
    assert "did not apply the constraint" in err.value.cause


def test_an_unchecked_answer_cannot_be_required_valid():
    with pytest.raises(StructuredError, match="not checked"):
        result("text", "stop", check=False).require_valid()
