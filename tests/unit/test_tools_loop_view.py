"""The loop's input checks (nothing is sent) and the transcript view, driven from Python.

The transcript here is assembled from a real executor on a real database; only the model's
turn is written by hand, because the view is what is under test (the loop with the real model
is tested in tests/integration/test_tools_loop.py and in the browser test).
"""

from __future__ import annotations

import openai
import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import (
    Round,
    ToolCall,
    ToolExecutor,
    ToolLoop,
    ToolLoopError,
    Transcript,
    acme_registry,
    approve_all,
    named,
)
from lab_helpers.widgets import TranscriptView


@pytest.fixture
def executor(tmp_path) -> ToolExecutor:
    return ToolExecutor(acme_registry(SupportDesk(tmp_path / "a.sqlite")), decide=approve_all)


@pytest.fixture
def loop(executor) -> ToolLoop:
    # Port 9 (discard) has no server: a request that slipped through would fail differently.
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="none", max_retries=0)
    return ToolLoop(client=client, model="m", executor=executor)


@pytest.mark.parametrize("choice", ["always", named("no_such_tool"), {"type": "x"}, ["auto", 3]])
def test_bad_tool_choice_is_refused_before_sending(loop, choice):
    with pytest.raises(ToolLoopError):
        loop.run("Where is ORD-78432?", tool_choice=choice)


def test_empty_message_and_bad_settings(loop, executor):
    with pytest.raises(ToolLoopError):
        loop.run("   ")
    with pytest.raises(ToolLoopError):
        ToolLoop(client=loop.client, model="m", executor=executor, max_rounds=0)
    with pytest.raises(ToolLoopError):
        ToolLoop(client=loop.client, model="m", executor=None)


def test_request_kwargs_send_the_choice_as_given(loop):
    kwargs = loop.request_kwargs([{"role": "user", "content": "hi"}], "required")
    assert kwargs["tool_choice"] == "required"
    assert [t["function"]["name"] for t in kwargs["tools"]] == loop.registry.names
    assert all(t["function"]["strict"] for t in kwargs["tools"])


def _transcript(executor: ToolExecutor) -> Transcript:
    calls = [ToolCall("get_order_status", '{"order_id": "ORD-78432"}', "c1"),
             ToolCall("get_order_status", '{"order_id": 1}', "c2")]
    first = Round(0, "required", calls=calls, finish_reason="tool_calls")
    first.results = [executor.execute(c) for c in calls]
    last = Round(1, "auto", content="It shipped with UPS.", finish_reason="stop")
    return Transcript(user="Where is my order ORD-78432?", tool_choice="required", model="m",
                      rounds=[first, last], answer=last.content, stop_reason="answered")


def test_view_shows_every_step(executor):
    t = _transcript(executor)
    view = TranscriptView(t)
    html = view.html
    for piece in ("Where is my order ORD-78432?", "get_order_status", "1Z999AA10123456784",
                  "[ok]", "[invalid_arguments]", "nothing ran", "It shipped with UPS.",
                  "tool_choice <b>required</b>", "2 call(s)"):
        assert piece in html, piece
    assert html.index("Tool call") < html.index("[ok]") < html.index("It shipped")
    assert view.selected is t


def test_view_picks_among_transcripts_and_escapes(executor):
    t = _transcript(executor)
    thanks = Transcript(user="<b>Thanks</b>", tool_choice="auto", model="m",
                        rounds=[Round(0, "auto", content="You're welcome")],
                        answer="You're welcome", stop_reason="answered")
    view = TranscriptView([t])
    view.add(thanks)
    assert view.selected is thanks and "No tool was called" in view.html
    assert "&lt;b&gt;Thanks&lt;/b&gt;" in view.html
    view.select(0)
    assert view.selected is t and "get_order_status" in view.html
    assert len(view.transcripts) == 2


def test_empty_view_says_what_to_do():
    assert "No transcript yet" in TranscriptView().html


def test_no_server_is_an_error_with_the_fix(loop):
    from lab_helpers.chat import ServerUnavailable

    with pytest.raises(ServerUnavailable) as info:
        loop.run("Where is ORD-78432?", tool_choice="required")
    assert "vllm-lab up" in info.value.fix and loop.executor.log == []


def test_run_many_checks_every_input_before_sending(loop):
    with pytest.raises(ToolLoopError):
        loop.run_many(["a", "b"], ["auto"])
    with pytest.raises(ToolLoopError):
        loop.run_many(["Where is ORD-78432?", ""], "required")
    with pytest.raises(ToolLoopError):
        loop.run_many(["a", "b"], ["auto", [named("get_order_status"), "sometimes"]])
    assert loop.executor.log == []

