"""Argument validation and the executor: bad calls never run and never change the database."""

from __future__ import annotations

import json

import pytest

from lab_helpers.support import Priority, SupportDesk
from lab_helpers.tools import (
    Decision,
    ToolCall,
    ToolExecutor,
    acme_registry,
    approve_all,
    ask_in_notebook,
    deny_all,
)


@pytest.fixture
def desk(tmp_path) -> SupportDesk:
    return SupportDesk(tmp_path / "acme.sqlite")


def call(name: str, args: object) -> ToolCall:
    return ToolCall(name, args if isinstance(args, str) else json.dumps(args), id="call-1")


TICKET = {"customer_email": "john.smith@email.com", "subject": "s", "description": "d",
          "priority": "high"}

BAD_CALLS = [
    ("unknown tool", call("drop_database", {}), "unknown_tool"),
    ("empty name", call("", {}), "unknown_tool"),
    ("arguments not JSON", call("get_order_status", "{order_id: ORD-78432"), "invalid_arguments"),
    ("arguments a list", call("get_order_status", ["ORD-78432"]), "invalid_arguments"),
    ("missing argument", call("get_order_status", {}), "invalid_arguments"),
    ("extra argument", call("get_order_status", {"order_id": "ORD-78432", "admin": True}),
     "invalid_arguments"),
    ("integer for string", call("get_order_status", {"order_id": 78432}), "invalid_arguments"),
    ("SQL in an order id", call("get_order_status",
                                {"order_id": "ORD-78432'; DROP TABLE orders; --"}),
     "invalid_arguments"),
    ("SQL in an email", call("get_customer_info",
                             {"customer_email": "x' OR '1'='1", "customer_id": None}),
     "invalid_arguments"),
    ("not in the enum", call("search_products", {"query": "laptop", "category": "cars",
                                                 "max_results": 3, "max_price": None}),
     "invalid_arguments"),
    ("out of range", call("search_products", {"query": "laptop", "category": "all",
                                              "max_results": 500, "max_price": None}),
     "invalid_arguments"),
    ("string for integer", call("search_products", {"query": "laptop", "category": "all",
                                                    "max_results": "5", "max_price": None}),
     "invalid_arguments"),
    ("bad phone on a write", call("schedule_callback", {
        "customer_phone": "555; DELETE FROM callbacks", "issue_summary": "x",
        "preferred_time": None}), "invalid_arguments"),
    ("bad priority on a write", call("create_ticket", {**TICKET, "priority": "asap"}),
     "invalid_arguments"),
    ("missing argument on a write", call("create_ticket", {"customer_email":
                                                           "john.smith@email.com"}),
     "invalid_arguments"),
    ("empty summary on a write", call("schedule_callback", {
        "customer_phone": "555-123-4567", "issue_summary": "", "preferred_time": None}),
     "invalid_arguments"),
    ("write denied", call("create_ticket", TICKET), "denied"),
    ("function raises", call("get_order_status", {"order_id": "ORD-00000"}), "error"),
    ("write that fails inside", call("create_ticket", {**TICKET, "customer_email":
                                                       "nobody@example.com"}), "error"),
]


@pytest.mark.parametrize("label,bad,status", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_calls_change_nothing(desk, label, bad, status):
    ran = []
    executor = ToolExecutor(acme_registry(desk), decide=_deny_recording(ran))
    before = desk.snapshot()
    result = executor.execute(bad)
    assert result.status == status, result.content
    assert not result.ok and "error" in result.content
    assert desk.snapshot() == before
    message = result.message()
    assert message["role"] == "tool" and message["tool_call_id"] == "call-1"
    assert json.loads(message["content"]) == result.content
    # Only a valid write reaches the decision; nothing invalid is ever offered for approval.
    assert bool(ran) == (status == "denied" or label == "write that fails inside")


def _deny_recording(seen):
    def decide(pending):
        seen.append(pending)
        if pending.arguments["customer_email"] == "nobody@example.com":
            return Decision.approve("test")
        return Decision.deny("test says no")
    return decide


def test_valid_calls_run_with_typed_arguments(desk):
    executor = ToolExecutor(acme_registry(desk), decide=approve_all)
    result = executor.execute(call("get_order_status", {"order_id": "ORD-78432"}))
    assert result.ok and result.content["status"] == "shipped"
    result = executor.execute(call("create_ticket", TICKET))
    assert result.ok and result.arguments["priority"] is Priority.high
    assert desk.tickets()[-1]["id"] == result.content["ticket_id"]
    # A null optional is dropped: the function's default applies.
    result = executor.execute(call("search_products", {"query": "laptop", "category": "all",
                                                       "max_results": 2, "max_price": None}))
    assert result.ok and "max_price" not in result.arguments
    assert [r.status for r in executor.log] == ["ok", "ok", "ok"]


def test_reads_need_no_decision_and_writes_do(desk):
    asked = []

    def decide(pending):
        asked.append(pending.describe())
        return Decision.approve()

    executor = ToolExecutor(acme_registry(desk), decide=decide)
    executor.execute(call("get_order_status", {"order_id": "ORD-78432"}))
    executor.execute(call("schedule_callback", {"customer_phone": "555-123-4567",
                                                "issue_summary": "billing",
                                                "preferred_time": "afternoon"}))
    assert asked == ["schedule_callback(customer_phone='555-123-4567', "
                     "issue_summary='billing', preferred_time='afternoon')"]


def test_deny_all_keeps_reads_working(desk):
    executor = ToolExecutor(acme_registry(desk), decide=deny_all)
    before = desk.row_counts()
    assert executor.execute(call("create_ticket", TICKET)).status == "denied"
    assert executor.execute(call("get_order_status", {"order_id": "ORD-99001"})).ok
    assert desk.row_counts() == before


def test_default_decision_denies_when_nobody_can_answer(desk, monkeypatch):
    def no_stdin(prompt=""):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_stdin)
    executor = ToolExecutor(acme_registry(desk))
    assert executor.decide is ask_in_notebook
    before = desk.snapshot()
    result = executor.execute(call("create_ticket", TICKET))
    assert result.status == "denied" and "decide=" in result.content["error"]
    assert desk.snapshot() == before


def test_default_decision_asks_and_follows_the_answer(desk, monkeypatch):
    prompts = []
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda p="": prompts.append(p) or next(answers))
    executor = ToolExecutor(acme_registry(desk))
    assert executor.execute(call("create_ticket", TICKET)).status == "denied"
    assert executor.execute(call("create_ticket", TICKET)).ok
    assert "create_ticket(" in prompts[0] and "[y/N]" in prompts[0]
