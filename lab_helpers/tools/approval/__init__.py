"""The approval gate: no tool runs in the lab without a recorded decision (module 4).

    from lab_helpers.tools.approval import ApprovalGate, scripted
    gate = ApprovalGate(decide=scripted({"acme__create_ticket": "approve"}))
    executor = ToolExecutor(gate.guard(registry), decide=gate.executor_hook)

- `gate`: `ApprovalGate` (decides, remembers, grants one run per approval) and the guarded
  tool functions (see its module doc for every bypass it closes);
- `policy`: tool identities, the per-tool policy, pending calls, decision functions;
- `audit`: the append-only JSON-lines audit log in the lab home.

May import: `errors`, `paths` (the audit log's place); never the tools it guards (the rest of
`lab_helpers.tools`): they are handed to the gate.
"""

from __future__ import annotations

from .audit import AUDIT_FILENAME, AuditLog, summarize
from .gate import ApprovalGate, GatedFunction, gated
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
    Rule,
    ToolIdentity,
    digest,
    scripted,
)

__all__ = [
    "AUDIT_FILENAME", "CHOICES", "DENIED_BY_USER", "LOCAL_SERVER", "ApprovalError",
    "ApprovalGate", "ApprovalPolicy", "AuditLog", "Choice", "DecisionFn", "GatedFunction",
    "NotApproved", "PendingApproval", "Rule", "ToolIdentity", "digest", "gated", "scripted",
    "summarize",
]
