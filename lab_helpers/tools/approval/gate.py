"""The approval gate: no tool runs in the lab without a recorded decision.

    gate = ApprovalGate(decide=lambda p: "approve")       # or a person, through ApprovalWidget
    registry = gate.guard(acme_registry(desk))            # every function now needs a grant
    executor = ToolExecutor(registry, decide=gate.executor_hook)

Why the gate sits *inside* the functions and not only in front of them: the original workshop
asked for approval in the browser while the endpoint that executed tools was open to anyone.
Here `guard` wraps each tool function so that it refuses to run unless the gate holds a grant
for exactly this server, this tool and these arguments, and each grant is spent by one run. So:

- a call without a decision does not run (reads on the auto list are approved, and recorded,
  by the gate itself);
- a replayed decision does not run (a grant is consumed; a pending call is decided once);
- a decision for other arguments does not run (a grant is bound to a digest of the arguments);
- a tool name that impersonates another server's tool does not run under the other tool's
  approval: identities are (server, tool) pairs taken from where the tool came from, never
  parsed from the name the model wrote.

The policy per tool: reads may be auto-approved, writes ask, a deny list always refuses, and
"approve always" remembers one tool (server and name) for the rest of the gate's life. Every
decision and every run goes to the append-only audit log (JSON lines in the lab home).

Failing closed: a decision function or `on_pending` callback that raises, or answers something
that is not a decision, is a denial (recorded, naming the failure). A decision is recorded
*before* its grant exists: if the audit log cannot be written, nothing is granted (nor
remembered "always") and the call is denied, with an `AuditWarning`. An auto-approved read is
decided and spent in one step, so no other thread can take its approval.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .audit import AuditLog, AuditWarning, summarize
from .decisions import Decision, PendingCall, checked_decision
from .policy import (
    CHOICES,
    DENIED_BY_USER,
    LOCAL_SERVER,
    ApprovalError,
    ApprovalPolicy,
    Choice,
    DecisionFn,
    NotApproved,
    PendingApproval,
    ToolIdentity,
    digest,
)

if TYPE_CHECKING:
    import pandas as pd

    from ..registry import ToolRegistry


class ApprovalGate:
    """Decides, remembers and records: the one authority over which tool call may run.

    `decide` answers a pending call with "approve", "deny" or "approve_always". Without one,
    the gate waits (up to `wait_seconds`) for `resolve(pending_id, choice)` from another
    thread: that is how the ApprovalWidget's buttons answer while the tool loop waits.
    """

    def __init__(self, policy: ApprovalPolicy | None = None, *,
                 decide: DecisionFn | None = None, audit: AuditLog | None = None,
                 wait_seconds: float = 300.0,
                 on_pending: Callable[[PendingApproval], None] | None = None) -> None:
        self.policy = policy or ApprovalPolicy()
        self.decide = decide
        self.audit = audit or AuditLog()
        self.wait_seconds = wait_seconds
        self.on_pending = on_pending
        self.session = uuid.uuid4().hex[:12]
        self.always: set[ToolIdentity] = set()
        self._lock = threading.Lock()
        self._pending: dict[str, PendingApproval] = {}
        self._decided: dict[str, PendingApproval] = {}
        self._grants: dict[str, int] = {}
        self._identities: dict[str, tuple[ToolIdentity, bool]] = {}

    # -- guarding a registry --------------------------------------------------------------------

    def guard(self, registry: ToolRegistry, *, server: str = LOCAL_SERVER) -> ToolRegistry:
        """A new registry whose functions only run with this gate's grant.

        A tool's identity comes from its function (an MCP tool knows its server), else
        `server`. A tool that would be auto-approved keeps `writes=False`; every other tool is
        marked `writes=True`, so the executor asks this gate (`executor_hook`) before running it.
        """
        guarded = type(registry)()  # the same kind of registry, empty
        for name in registry.names:
            spec = registry.get(name)
            fn = spec.function
            if isinstance(fn, GatedFunction):
                raise ApprovalError(f"{name} is already guarded by a gate.",
                                    fix="guard the original registry once")
            identity = getattr(fn, "identity", None)
            if not isinstance(identity, ToolIdentity):
                identity = ToolIdentity(server, name)
            rule = self.policy.rule(identity, writes=spec.writes)
            wrapped = GatedFunction(self, identity, name, fn, spec.writes)
            guarded.add(replace(spec, function=wrapped, writes=rule != "auto"))
            self._identities[name] = (identity, spec.writes)
        return guarded

    def identity_of(self, name: str) -> ToolIdentity:
        try:
            return self._identities[name][0]
        except KeyError:
            raise NotApproved(f"{name!r} is not a tool this gate guards.",
                              fix="register it with ApprovalGate.guard(registry)") from None

    # -- deciding -------------------------------------------------------------------------------

    def executor_hook(self, pending_call: PendingCall) -> Decision:
        """The executor's `decide`: ask (or apply the policy), record, and grant one run."""
        name = pending_call.call.name
        try:
            identity, writes = self._identities[name]
        except KeyError:
            return Decision.deny(f"{name} is not guarded by this gate")
        choice, by = self.request(identity, name, pending_call.arguments, writes=writes)
        if choice == "deny":
            return Decision.deny(DENIED_BY_USER if by == "user" else f"denied ({by})")
        return Decision.approve(f"{choice} ({by})")

    def adopt(self, decide: Callable[[PendingCall], Decision]) -> Callable[[PendingCall], Decision]:
        """A module-3 `decide(PendingCall) -> Decision` as this gate's executor hook.

        The policy still comes first (deny list, auto, approved always); otherwise `decide`
        answers, and its Decision (reason included) is recorded and, if approved, granted.
        """
        if getattr(decide, "__self__", None) is self:
            return decide

        def hook(pending_call: PendingCall) -> Decision:
            name = pending_call.call.name
            if name not in self._identities:
                return Decision.deny(f"{name} is not guarded by this gate")
            identity, writes = self._identities[name]
            rule = self.policy.rule(identity, writes=writes)
            if rule != "ask" or identity in self.always:
                return self.executor_hook(pending_call)
            decision, _ = checked_decision(decide, pending_call)
            pending = PendingApproval(uuid.uuid4().hex, identity, name,
                                      dict(pending_call.arguments),
                                      digest(identity, pending_call.arguments))
            choice, by = self._finish(pending, "approve" if decision.approved else "deny",
                                      f"decide function: {decision.reason}")
            return Decision.deny(by) if decision.approved and choice == "deny" else decision
        return hook

    def request(self, identity: ToolIdentity, name: str, arguments: dict[str, Any], *,
                writes: bool, grant: bool = True) -> tuple[Choice, str]:
        """Decide one call (policy first, then the person), record it, grant it if approved.

        Returns the choice as recorded and who (or what) made it. `grant=False`: the caller
        runs the call now, so no grant is left for anyone to take.
        """
        rule = self.policy.rule(identity, writes=writes)
        pending = PendingApproval(uuid.uuid4().hex, identity, name, dict(arguments),
                                  digest(identity, arguments))
        if rule == "deny":
            choice, by = "deny", "policy: deny list"
        elif rule == "auto":
            choice, by = "approve", "policy: auto"
        elif identity in self.always:
            choice, by = "approve", "policy: approved always"
        else:
            choice, by = self._ask(pending), "user"
        return self._finish(pending, choice, by, grant=grant)

    def _ask(self, pending: PendingApproval) -> Choice:
        """The person's (or decision function's) answer; "deny", saying why, if asking fails."""
        with self._lock:
            self._pending[pending.id] = pending
        asking = "the on_pending callback"
        try:
            if self.on_pending:
                self.on_pending(pending)
            asking = "the decision function"
            if self.decide is not None:
                choice = self.decide(pending)
                if choice not in CHOICES:
                    pending.decided_by = f"{asking} answered {choice!r}, not one of {CHOICES}"
                    return "deny"
                pending.choice = choice
            elif not pending._event.wait(self.wait_seconds):
                pending.choice = "deny"
                pending.decided_by = f"nobody decided within {self.wait_seconds:.0f} s"
            assert pending.choice is not None
            return pending.choice
        except Exception as exc:  # noqa: BLE001 - a failure to decide is a denial
            pending.decided_by = f"{asking} failed ({type(exc).__name__}: {exc})"
            return "deny"
        finally:
            with self._lock:
                self._pending.pop(pending.id, None)

    def pending(self) -> list[PendingApproval]:
        """Calls waiting for a decision now, oldest first."""
        with self._lock:
            return sorted(self._pending.values(), key=lambda p: p.created)

    def resolve(self, pending_id: str, choice: Choice) -> PendingApproval:
        """A person's decision on a waiting call (from a widget button, another thread)."""
        if choice not in CHOICES:
            raise ApprovalError(f"{choice!r} is not a decision.",
                                fix="use 'approve', 'deny' or 'approve_always'")
        with self._lock:
            pending = self._pending.get(pending_id)
            if pending is None or pending.choice is not None:
                why = "it was already decided" if pending_id in self._decided else \
                    "no call with that id is waiting"
                raise ApprovalError(f"Call {pending_id[:8]} cannot be decided: {why}.",
                                    fix="decide a call listed by ApprovalGate.pending()")
            pending.choice = choice
            pending.decided_by = "user"
        pending._event.set()
        return pending

    def _finish(self, pending: PendingApproval, choice: Choice, by: str, *,
                grant: bool = True) -> tuple[Choice, str]:
        """Record the decision, then (only if recorded) grant it: (choice, decided by)."""
        with self._lock:
            if pending.id in self._decided:
                raise ApprovalError(f"Call {pending.id[:8]} was already decided.")
            pending.choice = choice
            pending.decided_by = pending.decided_by or by
            self._decided[pending.id] = pending
        unrecorded = self._write(self._record(
            pending.identity, pending.arguments, event="decision", decision=choice,
            decided_by=pending.decided_by, result="not run" if choice == "deny" else ""))
        if choice == "deny":
            return choice, pending.decided_by
        if unrecorded:
            pending.choice = "deny"
            pending.decided_by = f"{pending.decided_by}, but not granted: {unrecorded}"
            return "deny", pending.decided_by
        with self._lock:
            if choice == "approve_always":
                self.always.add(pending.identity)
            if grant:
                self._grants[pending.digest] = self._grants.get(pending.digest, 0) + 1
        return choice, pending.decided_by

    # -- running --------------------------------------------------------------------------------

    def consume(self, identity: ToolIdentity, arguments: dict[str, Any], *,
                writes: bool) -> None:
        """Spend the grant for exactly this call, or raise NotApproved (nothing runs).

        An auto-approved tool gets its decision here (recorded like any other).
        """
        key = digest(identity, arguments)
        with self._lock:
            left = self._grants.get(key, 0)
            if left > 0:
                if left == 1:
                    del self._grants[key]
                else:
                    self._grants[key] = left - 1
                return
        if self.policy.rule(identity, writes=writes) == "auto":
            choice, by = self.request(identity, identity.tool, arguments, writes=writes,
                                      grant=False)
            if choice != "deny":
                return
            raise NotApproved(f"{identity.label} was not run: {by}.",
                              fix="make the audit log's directory writable")
        self._refused(identity, arguments, "gate", "no decision for this call")
        raise NotApproved(f"{identity.label} was not run: no decision was recorded for this "
                          "call with these arguments.",
                          cause="every approval is for one call with its exact arguments; a "
                                "grant is spent by one run",
                          fix="run tools through ToolExecutor.execute with "
                              "decide=gate.executor_hook")

    def refuse(self, name: str, arguments: dict[str, Any], reason: str) -> None:
        """Record a call the executor refused before any decision (never raises)."""
        identity = self._identities.get(name, (ToolIdentity(LOCAL_SERVER, name), False))[0]
        self._refused(identity, arguments, "executor", reason)

    def record_result(self, identity: ToolIdentity, arguments: dict[str, Any], status: str,
                      content: Any, seconds: float) -> None:
        """Record a run (never raises: the function has run, whatever the log can take)."""
        self._write(self._record(identity, arguments, event="run", decision="granted",
                                 decided_by="gate", result=summarize(status, content),
                                 seconds=round(seconds, 4)))

    def _refused(self, identity: ToolIdentity, arguments: dict[str, Any], by: str,
                 reason: str) -> None:
        self._write(self._record(identity, arguments, event="refused", decision="none",
                                 decided_by=by, result=f"not run: {reason}"))

    def _write(self, record: dict[str, Any]) -> str:
        """Append one audit line: "" if written, else why not (also warned, never raised)."""
        try:
            self.audit.append(record)
        except Exception as exc:  # noqa: BLE001 - OSError, or a record that cannot be encoded
            why = f"the audit log could not be written ({type(exc).__name__}: {exc})"
            warnings.warn(why, AuditWarning, stacklevel=3)
            return why
        return ""

    def records(self) -> list[dict[str, Any]]:
        """This gate's audit lines (the file may hold other sessions too)."""
        return self.audit.records(session=self.session)

    def frame(self) -> pd.DataFrame:
        return self.audit.frame(session=self.session)

    def _record(self, identity: ToolIdentity, arguments: dict[str, Any], **extra: Any
                ) -> dict[str, Any]:
        return {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "session": self.session, "server": identity.server, "tool": identity.tool,
                "arguments": arguments, **extra}


def gated(registry: ToolRegistry, decide: Callable[[PendingCall], Decision],
          gate: ApprovalGate | None = None
          ) -> tuple[ToolRegistry, ApprovalGate, Callable[[PendingCall], Decision]]:
    """(guarded registry, its gate, the executor's hook) for a ToolExecutor.

    A registry a gate already guards keeps that gate; any other is guarded here by `gate` (or a
    new one: reads auto-approved, writes ask `decide`). Either way, every function of the
    returned registry runs only on that gate's grant.
    """
    specs = [registry.get(n) for n in registry.names]
    gates = {id(s.function.gate): s.function.gate for s in specs
             if isinstance(s.function, GatedFunction)}
    if gates:
        if len(gates) > 1 or len(gates) == 1 and any(
                not isinstance(s.function, GatedFunction) for s in specs):
            raise ApprovalError("The registry mixes tools of several gates, or guarded and "
                                "unguarded tools.",
                                fix="guard one registry with one ApprovalGate.guard(registry)")
        (owner,) = gates.values()
        if gate is not None and gate is not owner:
            raise ApprovalError("The registry is guarded by another gate than the one given.",
                                fix="pass the gate that guarded the registry")
        return registry, owner, owner.adopt(decide)
    gate = gate or ApprovalGate()
    return gate.guard(registry), gate, gate.adopt(decide)


class GatedFunction:
    """A tool function that runs only on a grant from its gate (see the module doc)."""

    def __init__(self, gate: ApprovalGate, identity: ToolIdentity, name: str,
                 function: Callable[..., Any], writes: bool) -> None:
        self.gate = gate
        self.identity = identity
        self.name = name
        self.function = function
        self.writes = writes
        self.__name__ = name
        self.__doc__ = getattr(function, "__doc__", None)

    def __call__(self, **arguments: Any) -> Any:
        self.gate.consume(self.identity, arguments, writes=self.writes)
        start = time.perf_counter()
        try:
            content = self.function(**arguments)
        except Exception as exc:
            self.gate.record_result(self.identity, arguments, "error", str(exc),
                                    time.perf_counter() - start)
            raise
        self.gate.record_result(self.identity, arguments, "ok", content,
                                time.perf_counter() - start)
        return content
