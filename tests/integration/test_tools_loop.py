"""The tool loop against the real chat server (SmolLM2-135M, hermes parser, strict tools).

Model output is checked by structure only: a call names a registered tool and its arguments
pass the schema; which order id a 135M model picks is not asserted. The tests' conversations
run all at once (`runs`), each on its own desk, and each test checks its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class Run:
    """One scenario's loop, its transcript and the desk's rows before and after."""
    loop: ToolLoop
    transcript: Any = None
    error: BaseException | None = None
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)


def scenarios(chat_srv) -> dict[str, tuple[Callable[[SupportDesk], ToolLoop], dict]]:
    """Each test's loop (made on the test's own desk) and its `loop.run` arguments."""
    def approving(max_tokens: int = 150, **kw: Any) -> Callable[[SupportDesk], ToolLoop]:
        return lambda desk: ToolLoop(chat_srv, ToolExecutor(acme_registry(desk),
                                                            decide=approve_all),
                                     max_tokens=max_tokens, **kw)

    def denying(desk: SupportDesk) -> ToolLoop:
        return ToolLoop(chat_srv, ToolExecutor(acme_registry(desk), decide=deny_all),
                        max_tokens=100)

    return {
        "required": (approving(), dict(message="Where is my order ORD-78432?",
                                       tool_choice="required")),
        "named": (approving(), dict(message="I need help with ORD-99001.",
                                    tool_choice=named("get_order_status"), then="none")),
        "thanks": (approving(), dict(message="Thanks for your help today!",
                                     tool_choice="auto")),
        "none": (approving(), dict(
            message="Please open an urgent ticket for john.smith@email.com.",
            tool_choice="none")),
        "streaming": (approving(), dict(message="Where is my order ORD-78432?",
                                        tool_choice="required", stream=True, then="none")),
        "two calls": (approving(), dict(message=TWO_CALLS, tool_choice="auto", then="none")),
        "per round": (approving(), dict(
            message="Where is order ORD-99001? Also, search for laptops.",
            tool_choice=[named("get_order_status"), named("search_products")], then="none")),
        "round limit": (approving(100, max_rounds=1), dict(
            message="Where is my order ORD-78432?", tool_choice="required")),
        "denied": (denying, dict(
            message="Open a ticket for john.smith@email.com: broken headphones.",
            tool_choice=named("create_ticket"), then="none")),
    }


@pytest.fixture(scope="module")
def runs(chat_srv, tmp_path_factory) -> dict[str, Run]:
    """Every test's conversation, all sent at once: the server batches them, so the module
    takes about as long as its longest conversation instead of the sum of them all. Each has
    its own desk; each test checks its own transcript."""
    folder = tmp_path_factory.mktemp("desks")

    def one(make: Callable[[SupportDesk], ToolLoop], kwargs: dict, db: Path) -> Run:
        desk = SupportDesk(db)
        run = Run(make(desk), before=desk.snapshot())
        try:
            run.transcript = run.loop.run(kwargs.pop("message"), **kwargs)
        except Exception as exc:  # noqa: BLE001 - raised again by the test it belongs to
            run.error = exc
        run.after = desk.snapshot()
        return run

    todo = scenarios(chat_srv)
    with ThreadPoolExecutor(len(todo)) as pool:
        futures = {name: pool.submit(one, make, dict(kwargs), folder / f"acme-{n}.sqlite")
                   for n, (name, (make, kwargs)) in enumerate(todo.items())}
        return {name: future.result() for name, future in futures.items()}


def ran(runs: dict[str, Run], name: str) -> tuple[ToolLoop, Any, Run]:
    run = runs[name]
    if run.error is not None:
        raise run.error
    return run.loop, run.transcript, run


def assert_valid(loop: ToolLoop, transcript) -> None:
    for call in transcript.calls:
        loop.registry.validate(call)  # raises on an unknown tool or invalid arguments
        assert call.id


def test_required_makes_a_valid_call_and_the_answer_follows_its_result(runs):
    loop, t, _ = ran(runs, "required")
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


def test_named_tool_choice_forces_exactly_that_tool(runs):
    loop, t, _ = ran(runs, "named")
    first = t.rounds[0]
    assert [c.name for c in first.calls] == ["get_order_status"]
    assert_valid(loop, t)
    assert t.rounds[1].calls == [] and t.stop_reason in ("answered", "length")


def test_auto_on_thanks_calls_no_tool(runs):
    _, t, _ = ran(runs, "thanks")
    assert t.calls == [] and len(t.rounds) == 1 and t.answer


def test_none_never_calls_a_tool(runs):
    _, t, run = ran(runs, "none")
    assert t.calls == [] and len(t.rounds) == 1
    assert run.after == run.before


def test_streaming_assembles_the_same_structure(runs):
    loop, t, _ = ran(runs, "streaming")
    first = t.rounds[0]
    assert first.calls and first.finish_reason == "tool_calls"
    assert_valid(loop, t)
    assert first.prompt_tokens and first.completion_tokens
    assert t.answer is not None and t.rounds[-1].calls == []


def test_several_calls_in_one_turn_are_all_executed(runs):
    loop, t, _ = ran(runs, "two calls")
    first = t.rounds[0]
    assert len(first.calls) >= 2
    assert_valid(loop, t)
    assert len(first.results) == len(first.calls)
    assert {c.name for c in first.calls} >= {"get_order_status", "search_products"}
    assert all(r.ok for r in first.results)


def test_a_named_choice_per_round_drives_a_multi_tool_task(runs):
    loop, t, _ = ran(runs, "per round")
    assert [r.calls[0].name for r in t.rounds[:2]] == ["get_order_status", "search_products"]
    assert_valid(loop, t)
    assert len(t.results) == 2 and t.rounds[2].calls == []


def test_round_limit_stops_the_loop(runs):
    _, t, _ = ran(runs, "round limit")
    assert len(t.rounds) == 1 and t.stop_reason == "max_rounds" and t.answer is None
    assert t.results  # the calls of the last allowed round still ran


def test_a_denied_write_reaches_the_model_as_an_error(runs):
    _, t, run = ran(runs, "denied")
    assert [r.status for r in t.results] == ["denied"]
    assert run.after == run.before
    assert "not run" in json.loads(t.messages[3]["content"])["error"]
