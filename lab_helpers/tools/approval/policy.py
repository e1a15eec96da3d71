"""What a decision is about: tool identities, the per-tool policy, pending calls, choices.

See `lab_helpers.tools.approval` for how the gate uses them.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ...errors import LabError
from .audit import jsonable

Choice = Literal["approve", "deny", "approve_always"]
Rule = Literal["auto", "ask", "deny"]
CHOICES: tuple[Choice, ...] = ("approve", "deny", "approve_always")
LOCAL_SERVER = "local"
DENIED_BY_USER = "denied by the user"


class NotApproved(LabError, PermissionError):
    """A tool was about to run without a valid decision for exactly this call."""


class ApprovalError(LabError, ValueError):
    """A decision that cannot be taken (unknown or already decided call, unknown choice)."""


@dataclass(frozen=True)
class ToolIdentity:
    """Which tool this is: the server it came from and its name *on that server*."""

    server: str
    tool: str

    @property
    def label(self) -> str:
        return f"{self.server}/{self.tool}"


def digest(identity: ToolIdentity, arguments: dict[str, Any]) -> str:
    """One call's fingerprint: server, tool and canonical JSON of the arguments."""
    text = json.dumps([identity.server, identity.tool, jsonable(arguments)], sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ApprovalPolicy:
    """auto / ask / deny per tool. Keys are `ToolIdentity`s or "server/tool" labels.

    Tools not listed: reads `read_rule` (auto), writes `write_rule` (ask).
    """

    rules: dict[str, Rule] = field(default_factory=dict)
    deny: set[str] = field(default_factory=set)
    read_rule: Rule = "auto"
    write_rule: Rule = "ask"

    def rule(self, identity: ToolIdentity, *, writes: bool) -> Rule:
        if identity.label in self.deny:
            return "deny"
        if identity.label in self.rules:
            return self.rules[identity.label]
        return self.write_rule if writes else self.read_rule


@dataclass
class PendingApproval:
    """A call waiting for a person (or a decision function) to approve or deny it."""

    id: str
    identity: ToolIdentity
    name: str
    """The name the model used (qualified, e.g. `time__get_current_time`)."""
    arguments: dict[str, Any]
    digest: str
    created: float = field(default_factory=time.time)
    choice: Choice | None = None
    decided_by: str = ""
    _event: threading.Event = field(default_factory=threading.Event, repr=False)

    def pretty_arguments(self) -> str:
        return json.dumps(jsonable(self.arguments), indent=2, ensure_ascii=False)


DecisionFn = Callable[[PendingApproval], Choice]


def scripted(choices: dict[str, Choice] | Iterable[Choice], default: Choice = "deny"
             ) -> DecisionFn:
    """A decision function for runs without a person (unattended runs, tests): by tool name
    (qualified or plain), or a sequence answered in order, then `default`."""
    if isinstance(choices, dict):
        table = dict(choices)

        def by_name(pending: PendingApproval) -> Choice:
            return table.get(pending.name, table.get(pending.identity.tool, default))
        return by_name
    queue = list(choices)

    def in_order(pending: PendingApproval) -> Choice:
        return queue.pop(0) if queue else default
    return in_order
