"""The one place in the lab where a tool runs: `ToolExecutor.execute(call) -> ToolResult`.

    executor = ToolExecutor(registry, decide=approve_all)
    result = executor.execute(ToolCall("get_order_status", '{"order_id": "ORD-78432"}'))
    result.status, result.content, result.message()      # "ok", {...}, the tool message

Every path ends in a `ToolResult` the model can read, never in an exception: an unknown tool
name, arguments that fail the schema, a denied write or an exception inside the function all
become an error result with a short explanation, and in each of those cases the function did
not run (or, for an exception, its transaction rolled back). The order is fixed:

    look up the tool -> validate the arguments -> ask for a decision (writes only) -> run

How "never raises" holds: arguments nested deeper than `MAX_ARGUMENT_DEPTH` (or too deep for
Python to parse) are "invalid_arguments" before anything recurses over them; a `decide` that
raises or answers something that is not a `Decision` is a denial (`checked_decision`); the gate
denies, rather than raises, when its own decision function, callback or audit log fails; the
function's exceptions are the "error" result; and anything else that goes wrong before the
function runs is caught last in `execute` and answered as "denied". All of these are in the
audit log (a "refused" line, or a "deny" decision naming the failure); an unknown name or a
schema failure is answered before the gate and is not.

The decision is pluggable because module 4 puts its human approval gate exactly here: a
`decide(pending) -> Decision` callable, answered through the gate (`lab_helpers.tools.approval`).
Every registry runs guarded: `ToolExecutor` guards an unguarded one with a gate of its own
(reads auto-approved, writes ask `decide`), so each function refuses to run without the gate's
grant for exactly its call, and every decision and run lands in the audit log. The default,
`ask_in_notebook`, asks with `input()` (a text box in JupyterLab); where nobody can answer
(an unattended run, a script without a terminal) it denies, so a write never happens by
accident. Every execution is logged in `executor.log`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import LabError
from .approval import ApprovalGate, NotApproved, gated
from .approval.decisions import Decide, Decision, PendingCall, ask_in_notebook, checked_decision
from .registry import ToolCall, ToolCallError, ToolRegistry

ResultStatus = Literal["ok", "error", "denied", "unknown_tool", "invalid_arguments"]

MAX_ARGUMENT_DEPTH = 64
"""Arguments whose lists and objects nest deeper than this are refused as invalid: no tool
needs them, and the schema check, the grant digest and the audit log all recurse over them."""


@dataclass(frozen=True)
class ToolResult:
    """What came of one call. `content` is what the model reads (as JSON)."""

    call: ToolCall
    status: ResultStatus
    content: Any
    arguments: dict[str, Any] | None = None
    """The validated arguments the function ran with (None if it never got that far)."""
    decision: Decision | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def ran(self) -> bool:
        """Did the function run (successfully or not)?"""
        return self.status in ("ok", "error")

    def message(self) -> dict[str, Any]:
        """The `role: tool` message that answers the call."""
        return {"role": "tool", "tool_call_id": self.call.id,
                "content": json.dumps(self.content, default=str)}


@dataclass
class ToolExecutor:
    """Runs tool calls from a registry, asking `decide` before any tool that writes."""

    registry: ToolRegistry
    decide: Decide = ask_in_notebook
    log: list[ToolResult] = field(default_factory=list)
    gate: ApprovalGate | None = None
    """The approval gate every call passes (module 4); made here if the registry has none."""

    def __post_init__(self) -> None:
        self.registry, self.gate, self._hook = gated(self.registry, self.decide, self.gate)

    def execute(self, call: ToolCall) -> ToolResult:
        start = time.perf_counter()
        try:
            result = self._execute(call)
        except Exception as exc:  # noqa: BLE001 - the last resort: still an answer, audited
            result = self._refused(call, "denied", f"the executor failed ({type(exc).__name__}: "
                                                   f"{exc})")
        result = ToolResult(result.call, result.status, result.content, result.arguments,
                            result.decision, time.perf_counter() - start)
        self.log.append(result)
        return result

    def _execute(self, call: ToolCall) -> ToolResult:
        try:
            spec = self.registry.get(call.name)
            arguments: dict[str, Any] | None = self.registry.validate(call)
        except ToolCallError as exc:
            return ToolResult(call, exc.kind, _error(exc))
        except RecursionError:  # json.loads or the schema check, on absurd nesting
            arguments = None
        if arguments is None or _nested_deeper(arguments, MAX_ARGUMENT_DEPTH):
            return self._refused(call, "invalid_arguments", f"the arguments of {call.name} are "
                                 f"nested more than {MAX_ARGUMENT_DEPTH} levels deep")
        decision = None
        if spec.writes:
            decision, failed = checked_decision(self._hook, PendingCall(call, arguments))
            if failed:
                self._audit_refusal(call, decision.reason)
            if not decision.approved:
                return ToolResult(call, "denied",
                                  {"error": f"{call.name} was not run: {decision.reason}"},
                                  arguments, decision)
        try:
            content = spec.function(**arguments)
        except NotApproved as exc:  # the gate held no grant for this exact call: nothing ran
            return ToolResult(call, "denied", _error(exc), arguments, decision)
        except Exception as exc:  # noqa: BLE001 - the model reads the error instead
            return ToolResult(call, "error", _error(exc), arguments, decision)
        return ToolResult(call, "ok", content, arguments, decision)

    def _refused(self, call: ToolCall, status: ResultStatus, reason: str) -> ToolResult:
        """A call refused before it could run: audited, and answered to the model."""
        self._audit_refusal(call, reason)
        return ToolResult(call, status, {"error": f"{call.name} was not run: {reason}."})

    def _audit_refusal(self, call: ToolCall, reason: str) -> None:
        if self.gate is not None:
            self.gate.refuse(call.name, {"unparsed": _clip(str(call.arguments))}, reason)


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, LabError):
        out: dict[str, Any] = {"error": exc.what}
        if exc.cause:
            out["cause"] = exc.cause
        if exc.fix:
            out["fix"] = exc.fix
        return out
    return {"error": f"{type(exc).__name__}: {exc}"}


def _nested_deeper(value: Any, limit: int) -> bool:
    """Do lists and dicts nest more than `limit` levels deep in `value`? (No recursion.)"""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, (list, tuple)) else None
        if children is not None:
            if depth >= limit:
                return True
            stack.extend((child, depth + 1) for child in children)
    return False


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
