"""`ToolExecutor.execute` never raises: every failure is a result the model reads, and audited.

Real SQLite desk, real audit files: a failing decision, a bogus answer, a crashing callback,
absurdly nested arguments, an audit log that cannot be written, and many threads at once.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolCall, ToolExecutor, ToolRegistry, acme_registry, approve_all
from lab_helpers.tools.approval import ApprovalGate, AuditLog, NotApproved
from tests.acme_cases import ORDER, TICKET


def call(name: str, args: dict | str, id: str = "c1") -> ToolCall:
    return ToolCall(name, args if isinstance(args, str) else json.dumps(args), id)


def crash(*_: Any) -> Any:
    raise ValueError("the decider crashed")


def assert_not_run_and_audited(result, desk: SupportDesk, before, gate: ApprovalGate,
                               status: str, *, says: str) -> None:
    assert result.status == status, result.content
    assert not result.ran and "error" in result.content
    assert json.loads(result.message()["content"]) == result.content
    assert desk.snapshot() == before
    last = gate.records()[-1]
    assert last["tool"] == "create_ticket"
    assert (last["event"], last["decision"]) in {("decision", "deny"), ("refused", "none")}
    assert last["result"].startswith("not run")
    assert says in last["decided_by"] + last["result"]
    assert all(v == 0 for v in gate._grants.values())


# The gate's own decision function (DecisionFn: PendingApproval -> "approve" / "deny" / ...)
GATE_FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "decide raises": ({"decide": crash}, "ValueError"),
    "decide answers 'yes please'": ({"decide": lambda p: "yes please"}, "'yes please'"),
    "decide answers None": ({"decide": lambda p: None}, "None"),
    "decide answers True": ({"decide": lambda p: True}, "True"),
    "on_pending raises": ({"decide": lambda p: "approve", "on_pending": crash}, "ValueError"),
}


@pytest.mark.parametrize("label", GATE_FAILURES)
def test_a_failing_gate_decision_denies_and_is_audited(desk, tmp_path, label):
    kwargs, says = GATE_FAILURES[label]
    gate = ApprovalGate(audit=AuditLog(tmp_path / "a.jsonl"), **kwargs)
    ex = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    before = desk.snapshot()
    result = ex.execute(call("create_ticket", TICKET))
    assert_not_run_and_audited(result, desk, before, gate, "denied", says=says)
    assert gate.pending() == [] and gate.always == set()


# The executor's decide (Decide: PendingCall -> Decision), adopted by the gate.
EXECUTOR_FAILURES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "decide raises": (crash, "ValueError"),
    "decide answers a string": (lambda p: "approve", "'approve'"),
    "decide answers True": (lambda p: True, "True"),
    "decide answers None": (lambda p: None, "None"),
    "decide answers a look-alike": (lambda p: SimpleNamespace(approved=True, reason="trust me"),
                                    "namespace"),
}


@pytest.mark.parametrize("label", EXECUTOR_FAILURES)
def test_a_failing_executor_decision_denies_and_is_audited(desk, tmp_path, label):
    decide, says = EXECUTOR_FAILURES[label]
    gate = ApprovalGate(audit=AuditLog(tmp_path / "a.jsonl"))
    ex = ToolExecutor(acme_registry(desk), decide=decide, gate=gate)
    before = desk.snapshot()
    result = ex.execute(call("create_ticket", TICKET))
    assert_not_run_and_audited(result, desk, before, gate, "denied", says=says)


def deeply_nested(depth: int, **fields: str) -> str:
    """JSON object text whose `description` is a list nested `depth` levels deep."""
    parts = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items()]
    parts.append('"description": ' + "[" * depth + "]" * depth)
    return "{" + ", ".join(parts) + "}"


@pytest.mark.parametrize("depth", [400, 200_000])
def test_absurdly_nested_arguments_are_invalid_and_audited(desk, tmp_path, depth):
    gate = ApprovalGate(decide=lambda p: "approve", audit=AuditLog(tmp_path / "a.jsonl"))
    ex = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    before = desk.snapshot()
    raw = deeply_nested(depth, customer_email=TICKET["customer_email"], subject="s")
    result = ex.execute(call("create_ticket", raw))
    assert result.status == "invalid_arguments"
    if depth > 1000:       # the schema check sees a list where a string belongs, else:
        assert_not_run_and_audited(result, desk, before, gate, "invalid_arguments",
                                   says="nested")


@pytest.mark.parametrize("depth", [600, 200_000])
def test_nested_arguments_a_schema_allows_still_never_reach_the_gate(tmp_path, depth):
    """A tool that takes any list: parsing, the schema and the grant digest all recurse."""
    ran: list[int] = []

    def store(description: list[Any]) -> int:
        """Store a list."""
        ran.append(1)
        return len(ran)

    registry = ToolRegistry()
    registry.register(store, name="create_ticket", writes=True)
    gate = ApprovalGate(decide=lambda p: "approve", audit=AuditLog(tmp_path / "a.jsonl"))
    ex = ToolExecutor(gate.guard(registry), decide=gate.executor_hook)
    result = ex.execute(call("create_ticket", deeply_nested(depth)))
    assert result.status == "invalid_arguments" and "nested" in result.content["error"]
    assert ran == []
    last = gate.records()[-1]
    assert (last["tool"], last["event"]) == ("create_ticket", "refused")
    assert ex.execute(call("create_ticket", {"description": [[1, [2]]]})).ok and ran == [1]


@pytest.mark.parametrize("who", ["gate decides", "executor decides"])
def test_an_unwritable_audit_log_fails_closed(desk, tmp_path, who):
    path = tmp_path / "audit.jsonl"
    if who == "gate decides":
        gate = ApprovalGate(decide=lambda p: "approve_always", audit=AuditLog(path))
        ex = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    else:
        gate = ApprovalGate(audit=AuditLog(path))
        ex = ToolExecutor(acme_registry(desk), decide=approve_all, gate=gate)
    path.mkdir()                           # from now on every append fails (IsADirectoryError)
    before = desk.snapshot()
    with pytest.warns(RuntimeWarning, match="audit log"):
        write = ex.execute(call("create_ticket", TICKET))
        read = ex.execute(call("get_order_status", ORDER))
    assert (write.status, read.status) == ("denied", "denied")
    assert "audit log" in write.content["error"]
    assert desk.snapshot() == before and gate.always == set()
    assert all(v == 0 for v in gate._grants.values())
    with pytest.warns(RuntimeWarning), pytest.raises(NotApproved):    # no grant was left over
        ex.registry.get("create_ticket").function(**write.arguments)
    assert desk.snapshot() == before
    path.rmdir()                           # the log is writable again: calls are decided anew
    assert ex.execute(call("create_ticket", TICKET)).ok
    assert [r["event"] for r in gate.records()] == ["decision", "run"]
    assert desk.row_counts()["tickets"] == len(before["tickets"]) + 1


def run_threads(threads: int, per_thread: int, work: Callable[[int, int], Any]) -> list[Any]:
    start = threading.Barrier(threads)
    out: list[Any] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        start.wait()
        try:
            for j in range(per_thread):
                out.append(work(i, j))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert errors == [] and len(out) == threads * per_thread
    return out


def assert_exact(gate: ApprovalGate, calls: Counter[str]) -> None:
    assert all(v == 0 for v in gate._grants.values()), gate._grants
    lines = Counter((r["tool"], r["event"]) for r in gate.records())
    expected = Counter({(tool, event): n for tool, n in calls.items()
                        for event in ("decision", "run")})
    assert lines == expected


def test_concurrent_auto_approved_reads_keep_exact_grants(desk, tmp_path):
    gate = ApprovalGate(audit=AuditLog(tmp_path / "a.jsonl"))
    ex = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    results = run_threads(8, 20, lambda i, j: ex.execute(call("get_order_status", ORDER,
                                                              f"{i}-{j}")))
    assert all(r.ok for r in results)
    assert_exact(gate, Counter(get_order_status=160))


def test_concurrent_reads_and_approved_writes_keep_exact_grants(desk, tmp_path):
    gate = ApprovalGate(decide=lambda p: "approve", audit=AuditLog(tmp_path / "a.jsonl"))
    ex = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    before = desk.row_counts()["tickets"]

    def work(i: int, j: int):
        if (i + j) % 2:
            return ex.execute(call("create_ticket", TICKET, f"{i}-{j}"))
        return ex.execute(call("get_order_status", ORDER, f"{i}-{j}"))

    results = run_threads(8, 20, work)
    assert all(r.ok for r in results), [r.content for r in results if not r.ok][:3]
    assert desk.row_counts()["tickets"] == before + 80          # each write ran exactly once
    assert_exact(gate, Counter(get_order_status=80, create_ticket=80))
