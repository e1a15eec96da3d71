"""ApprovalWidget driven from Python: the executor waits in the gate, a click decides."""

from __future__ import annotations

import html
import json
import re
import threading
import time

import ipywidgets as widgets
import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolCall, ToolExecutor, acme_registry
from lab_helpers.tools.approval import ApprovalGate, AuditLog
from lab_helpers.widgets.approval import ApprovalWidget

TICKET = {"customer_email": "john.smith@email.com", "subject": "Widget", "description": "d",
          "priority": "low"}


@pytest.fixture
def setup(tmp_path):
    desk = SupportDesk(tmp_path / "acme.sqlite")
    gate = ApprovalGate(audit=AuditLog(tmp_path / "a.jsonl"), wait_seconds=20)
    ex = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    return desk, gate, ex, ApprovalWidget(gate)


def _in_background(ex, call):
    out: list = []
    t = threading.Thread(target=lambda: out.append(ex.execute(call)))
    t.start()
    return t, out


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_idle_widget_has_nothing_to_decide(setup):
    _, _, _, w = setup
    assert w.current is None
    assert all(b.disabled for b in vars(w.controls).values())
    assert "No tool call is waiting" in w.card


def test_approve_click_runs_the_call_once(setup):
    desk, gate, ex, w = setup
    before = desk.row_counts()["tickets"]
    t, out = _in_background(ex, ToolCall("create_ticket", json.dumps(TICKET), "1"))
    _wait(lambda: w.current is not None)
    card = w.card
    assert "create_ticket" in card and "john.smith@email.com" in card and "local" in card
    w.controls.approve.click()
    t.join(10)
    assert out[0].ok and desk.row_counts()["tickets"] == before + 1
    assert w.current is None and w.decisions == ["local/create_ticket: approve"]
    w.controls.approve.click()                      # nothing waits: no second run
    assert desk.row_counts()["tickets"] == before + 1


def test_deny_click_answers_the_model_and_changes_nothing(setup):
    desk, gate, ex, w = setup
    before = desk.snapshot()
    t, out = _in_background(ex, ToolCall("create_ticket", json.dumps(TICKET), "2"))
    _wait(lambda: w.current is not None)
    w.controls.deny.click()
    t.join(10)
    assert out[0].status == "denied" and "denied by the user" in out[0].message()["content"]
    assert desk.snapshot() == before
    assert gate.records()[-1]["decision"] == "deny"


def test_always_click_stops_asking_for_that_tool(setup):
    desk, gate, ex, w = setup
    t, out = _in_background(ex, ToolCall("create_ticket", json.dumps(TICKET), "3"))
    _wait(lambda: w.current is not None)
    w.controls.always.click()
    t.join(10)
    assert out[0].ok
    again = ex.execute(ToolCall("create_ticket", json.dumps({**TICKET, "subject": "2nd"}), "4"))
    assert again.ok and w.current is None


def test_agent_chat_builds_and_ignores_an_empty_message(tmp_path):
    import openai

    from lab_helpers.mcp.agent import McpAgent
    from lab_helpers.mcp.bridge import McpBridge
    from lab_helpers.widgets.approval import AgentChat

    with McpBridge([]) as bridge:
        gate = ApprovalGate(audit=AuditLog(tmp_path / "a.jsonl"))
        agent = McpAgent(None, bridge, gate, client=openai.OpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="unused"), model="m")
        chat = AgentChat(agent)
        assert chat.approvals.current is None and not chat.busy
        chat.controls.send.click()  # empty message: nothing is sent
        assert not chat.busy and chat.last is None and agent.transcripts == []


# -- issue 19: what a newcomer hit in module 4 ------------------------------------------------


def test_arguments_are_pretty_json_with_a_normal_line_height(setup):
    _, _, ex, w = setup
    t, _ = _in_background(ex, ToolCall("create_ticket", json.dumps(TICKET), "5"))
    _wait(lambda: w.current is not None)
    pre = re.search(r'<pre style="([^"]*)">(.*?)</pre>', w.card, re.DOTALL)
    assert pre, w.card
    assert "line-height:1.3" in pre.group(1)  # not the widget row's 28 px: double-spaced
    assert json.loads(html.unescape(pre.group(2))) == TICKET
    w.controls.deny.click()
    t.join(10)


def test_buttons_show_only_while_a_call_waits(setup):
    _, _, ex, w = setup
    buttons = list(vars(w.controls).values())
    assert all(b.disabled and b.layout.display == "none" for b in buttons)
    t, _ = _in_background(ex, ToolCall("create_ticket", json.dumps(TICKET), "6"))
    _wait(lambda: w.current is not None)
    assert all(not b.disabled and b.layout.display != "none" for b in buttons)
    w.controls.approve.click()
    t.join(10)
    assert all(b.disabled and b.layout.display == "none" for b in buttons)


@pytest.fixture
def agent_chat(tmp_path):
    import openai

    from lab_helpers.mcp.agent import McpAgent
    from lab_helpers.mcp.bridge import McpBridge
    from lab_helpers.widgets.approval import AgentChat

    with McpBridge([]) as bridge:
        gate = ApprovalGate(audit=AuditLog(tmp_path / "a.jsonl"))
        agent = McpAgent(None, bridge, gate, client=openai.OpenAI(
            base_url="http://127.0.0.1:9/v1", api_key="unused"), model="m")
        yield AgentChat(agent), agent


def test_the_message_box_has_room_for_several_lines(agent_chat):
    chat, _ = agent_chat
    assert isinstance(chat.controls.message, widgets.Textarea)
    assert (chat.controls.message.rows or 0) >= 3


@pytest.mark.parametrize("text", ["", "  \n "])
def test_an_empty_send_says_what_to_do(agent_chat, text):
    chat, agent = agent_chat
    chat.controls.message.value = text
    chat.controls.send.click()
    assert not chat.busy and chat.last is None and agent.transcripts == []
    assert "Type a message" in chat.status and "Send" in chat.status
