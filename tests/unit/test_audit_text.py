"""The audit log survives any text a model writes, and a damaged line does not hide the rest."""

from __future__ import annotations

import json

import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolCall, ToolExecutor, acme_registry
from lab_helpers.tools.approval import ApprovalGate, AuditLog, scripted
from tests.acme_cases import ORDER, TICKET

# Every character str.splitlines() splits on: a reader that splits on them breaks the JSON.
LINE_BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def call(name: str, args: dict, id: str = "c1") -> ToolCall:
    return ToolCall(name, json.dumps(args), id)


def executor(desk: SupportDesk, gate: ApprovalGate) -> ToolExecutor:
    return ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)


@pytest.mark.parametrize("ch", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_line_breaks_in_arguments_and_results_keep_the_log_readable(desk, tmp_path, ch):
    path = tmp_path / "audit.jsonl"
    gate = ApprovalGate(decide=scripted(["approve", "deny"]), audit=AuditLog(path))
    ex = executor(desk, gate)
    text = f"help{ch}me"
    approved = ex.execute(call("create_ticket", {**TICKET, "subject": text}))
    denied = ex.execute(call("create_ticket", {**TICKET, "description": f"again{ch}"}))
    found = ex.execute(call("search_products", {"query": text, "category": "all",
                                                "max_results": 2, "max_price": None}))
    assert approved.ok, approved.content
    assert denied.status == "denied"
    assert found.ok and found.content["query"] == text      # the result carries it too
    expected = [("create_ticket", "decision", "approve"), ("create_ticket", "run", "granted"),
                ("create_ticket", "decision", "deny"), ("search_products", "decision", "approve"),
                ("search_products", "run", "granted")]
    fresh = AuditLog(path)
    for records in (gate.records(), fresh.records(), AuditLog(path).records(session=None)):
        assert [(r["tool"], r["event"], r["decision"]) for r in records] == expected
        assert records[0]["arguments"]["subject"] == text
        assert records[2]["arguments"]["description"] == f"again{ch}"
        assert records[3]["arguments"]["query"] == text
    assert fresh.bad_lines == []
    frame = gate.frame()
    assert len(frame) == 5 and frame["arguments"][0]["subject"] == text
    # One ASCII line per record: nothing a reader could split on but the "\n" between them.
    data = path.read_bytes()
    assert data.isascii() and data.count(b"\n") == 5 and data.endswith(b"\n")
    # The log keeps working after the odd text: a later call is recorded and read back.
    assert ex.execute(call("get_order_status", ORDER)).ok
    assert len(gate.records()) == 7 and len(AuditLog(path).frame()) == 7


def test_a_garbage_line_is_reported_and_the_rest_still_reads(desk, tmp_path):
    path = tmp_path / "audit.jsonl"
    gate = ApprovalGate(audit=AuditLog(path))
    ex = executor(desk, gate)
    assert ex.execute(call("get_order_status", ORDER)).ok                # lines 1-2
    with path.open("ab") as f:
        f.write(b'{"time": "2024-05-01T10:00:00", "tool": "cut short\n')  # line 3: truncated
        f.write(b"\xff\xfe not even UTF-8\n")                             # line 4
        f.write(b'["an", "older", "format"]\n')                            # line 5: not a record
    assert ex.execute(call("get_order_status", ORDER)).ok                # lines 6-7
    log = AuditLog(path)
    with pytest.warns(RuntimeWarning, match=r"lines? 3, 4, 5"):
        records = log.records()
    assert [r["event"] for r in records] == ["decision", "run", "decision", "run"]
    assert [b.number for b in log.bad_lines] == [3, 4, 5]
    assert "cut short" in log.bad_lines[0].text
    with pytest.warns(RuntimeWarning):
        assert len(gate.records()) == 4
    with pytest.warns(RuntimeWarning):
        frame = gate.frame()
    assert list(frame["event"]) == ["decision", "run", "decision", "run"]


def test_a_line_cut_short_at_the_end_does_not_swallow_the_next_record(desk, tmp_path):
    path = tmp_path / "audit.jsonl"
    gate = ApprovalGate(audit=AuditLog(path))
    ex = executor(desk, gate)
    assert ex.execute(call("get_order_status", ORDER)).ok
    with path.open("ab") as f:
        f.write(b'{"time": "2024-05-01T10:00:00", "tool": "crash mid-wri')   # no newline
    assert ex.execute(call("get_order_status", ORDER)).ok
    log = AuditLog(path)
    with pytest.warns(RuntimeWarning, match="line 3"):
        records = log.records(session=gate.session)
    assert [r["event"] for r in records] == ["decision", "run", "decision", "run"]
    assert [b.number for b in log.bad_lines] == [3]
