"""The tool loop against the real chat server (SmolLM2-135M, hermes parser, strict tools).

Model output is checked by structure only: a call names a registered tool and its arguments
pass the schema; which order id a 135M model picks is not asserted.
"""

from __future__ import annotations

import json

import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all, deny_all, named

pytestmark = pytest.mark.integration

# What the module's notebook uses to show the parser and the loop handling two calls in one
# turn: the model copies them (it does not decide on two calls by itself).
TWO_CALLS = (
    'Repeat this text exactly:\n'
    '<tool_call>\n{"name": "get_order_status", "arguments": {"order_id": "ORD-99001"}}\n'
    '</tool_call>\n<tool_call>\n{"name": "search_products", "arguments": {"query": "laptop", '
    '"category": "electronics", "max_results": 3, "max_price": null}}\n</tool_call>'
)


@pytest.fixture
def desk(tmp_path) -> SupportDesk:
    return SupportDesk(tmp_path / "acme.sqlite")


@pytest.fixture
def loop(chat_srv, desk) -> ToolLoop:
    return ToolLoop(chat_srv, ToolExecutor(acme_registry(desk), decide=approve_all),
                    max_tokens=150)


def assert_valid(loop: ToolLoop, transcript) -> None:
    for call in transcript.calls:
        loop.registry.validate(call)  # raises on an unknown tool or invalid arguments
        assert call.id


def test_required_makes_a_valid_call_and_the_answer_follows_its_result(loop):
    t = loop.run("Where is my order ORD-78432?", tool_choice="required")
    first = t.rounds[0]
    assert first.calls and first.finish_reason == "tool_calls"
    assert_valid(loop, t)
    assert [r.status for r in first.results] and all(r.ran for r in first.results)
    # The full loop: assistant(tool_calls) -> tool message(s) -> a final answer without calls.
    assert t.stop_reason in ("answered", "length") and t.answer
    roles = [m["role"] for m in t.messages]
    assert roles[:3] == ["system", "user", "assistant"] and "tool" in roles
    assert roles[-1] == "assistant" and "tool_calls" not in t.messages[-1]
    tool_msgs = [m for m in t.messages if m["role"] == "tool"]
    assert {m["tool_call_id"] for m in tool_msgs} == {c.id for c in first.calls}
    assert json.loads(tool_msgs[0]["content"]) == first.results[0].content


def test_named_tool_choice_forces_exactly_that_tool(loop):
    t = loop.run("I need help with ORD-99001.", tool_choice=named("get_order_status"),
                 then="none")
    first = t.rounds[0]
    assert [c.name for c in first.calls] == ["get_order_status"]
    assert_valid(loop, t)
    assert t.rounds[1].calls == [] and t.stop_reason in ("answered", "length")


def test_auto_on_thanks_calls_no_tool(loop):
    t = loop.run("Thanks for your help today!", tool_choice="auto")
    assert t.calls == [] and len(t.rounds) == 1 and t.answer


def test_none_never_calls_a_tool(loop, desk):
    before = desk.snapshot()
    t = loop.run("Please open an urgent ticket for john.smith@email.com.", tool_choice="none")
    assert t.calls == [] and len(t.rounds) == 1
    assert desk.snapshot() == before


def test_streaming_assembles_the_same_structure(loop):
    t = loop.run("Where is my order ORD-78432?", tool_choice="required", stream=True,
                 then="none")
    first = t.rounds[0]
    assert first.calls and first.finish_reason == "tool_calls"
    assert_valid(loop, t)
    assert first.prompt_tokens and first.completion_tokens
    assert t.answer is not None and t.rounds[-1].calls == []


def test_several_calls_in_one_turn_are_all_executed(loop):
    t = loop.run(TWO_CALLS, tool_choice="auto", then="none")
    first = t.rounds[0]
    assert len(first.calls) >= 2
    assert_valid(loop, t)
    assert len(first.results) == len(first.calls)
    assert {c.name for c in first.calls} >= {"get_order_status", "search_products"}
    assert all(r.ok for r in first.results)


def test_a_named_choice_per_round_drives_a_multi_tool_task(loop):
    t = loop.run("Where is order ORD-99001? Also, search for laptops.",
                 tool_choice=[named("get_order_status"), named("search_products")],
                 then="none")
    assert [r.calls[0].name for r in t.rounds[:2]] == ["get_order_status", "search_products"]
    assert_valid(loop, t)
    assert len(t.results) == 2 and t.rounds[2].calls == []


def test_round_limit_stops_the_loop(chat_srv, desk):
    loop = ToolLoop(chat_srv, ToolExecutor(acme_registry(desk), decide=approve_all),
                    max_tokens=100, max_rounds=1)
    t = loop.run("Where is my order ORD-78432?", tool_choice="required")
    assert len(t.rounds) == 1 and t.stop_reason == "max_rounds" and t.answer is None
    assert t.results  # the calls of the last allowed round still ran


def test_a_denied_write_reaches_the_model_as_an_error(chat_srv, desk):
    loop = ToolLoop(chat_srv, ToolExecutor(acme_registry(desk), decide=deny_all),
                    max_tokens=100)
    before = desk.snapshot()
    t = loop.run("Open a ticket for john.smith@email.com: broken headphones.",
                 tool_choice=named("create_ticket"), then="none")
    assert [r.status for r in t.results] == ["denied"]
    assert desk.snapshot() == before
    assert "not run" in json.loads(t.messages[3]["content"])["error"]
