"""What the tool executor asks before a tool that writes runs: a `Decision` on a `PendingCall`.

    decide(pending) -> Decision          # approve / deny, and why
    approve_all, deny_all, ask_in_notebook

The executor (`lab_helpers.tools.executor`, module 3) and the approval gate (module 4) both
speak these: the gate is the executor's `decide`. They live here, below both, so neither
package imports the other's internals (`tools` builds on `approval`, never the reverse).
`checked_decision` is how a `decide` that raises or answers something else becomes a denial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..registry import ToolCall


@dataclass(frozen=True)
class Decision:
    """approve / deny, and why (shown to the model when denied, kept in the log)."""

    approved: bool
    reason: str = ""

    @classmethod
    def approve(cls, reason: str = "approved") -> Decision:
        return cls(True, reason)

    @classmethod
    def deny(cls, reason: str = "denied") -> Decision:
        return cls(False, reason)


@dataclass(frozen=True)
class PendingCall:
    """A validated call to a tool that writes, waiting for a decision."""

    call: ToolCall
    arguments: dict[str, Any]

    def describe(self) -> str:
        args = ", ".join(f"{k}={_plain(v)!r}" for k, v in self.arguments.items())
        return f"{self.call.name}({args})"


Decide = Callable[[PendingCall], Decision]


def checked_decision(decide: Decide, pending: PendingCall) -> tuple[Decision, bool]:
    """`decide(pending)`, and whether it failed: a raise, or an answer that is not a Decision,
    is a denial saying so (never an exception, never a look-alike taken for an approval)."""
    try:
        decision = decide(pending)
    except Exception as exc:  # noqa: BLE001 - a decision that fails denies
        return Decision.deny(f"no valid decision (decide raised {type(exc).__name__}: {exc})"), \
            True
    if not isinstance(decision, Decision):
        return Decision.deny(f"no valid decision (decide answered {decision!r}, not a "
                             "Decision)"), True
    return decision, False


def approve_all(pending: PendingCall) -> Decision:
    """Approve every write. For tests and for notebook cells that say so in the text."""
    return Decision.approve("approved by approve_all")


def deny_all(pending: PendingCall) -> Decision:
    """Deny every write: read-only tools still run."""
    return Decision.deny("writes are switched off (deny_all)")


def ask_in_notebook(pending: PendingCall) -> Decision:
    """Ask the person at the notebook: `input()` shows a text box under the running cell.

    Where no one can answer (an unattended run, a script without a terminal), input() fails
    and the write is denied, saying so.
    """
    prompt = (f"The model wants to run {pending.describe()}, which changes the ACME "
              "database. Allow it? [y/N] ")
    try:
        answer = input(prompt)
    except Exception:  # noqa: BLE001 - StdinNotImplementedError, EOFError, OSError
        return Decision.deny("nobody could be asked (no input available); pass decide=... "
                             "to ToolExecutor to decide in code")
    if answer.strip().lower() in ("y", "yes"):
        return Decision.approve(f"approved by the user ({answer.strip()!r})")
    return Decision.deny(f"denied by the user ({answer.strip()!r})")


def _plain(value: Any) -> Any:
    """Enum members by their value (for descriptions and JSON)."""
    return value.value if isinstance(value, Enum) else value
