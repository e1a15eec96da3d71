"""ApprovalWidget and AgentChat: a person approves or denies each tool call the model makes.

    gate = ApprovalGate()                           # no decision function: it waits for a click
    agent = McpAgent(srv, bridge, gate, folder=...)
    AgentChat(agent)                                # message box, tool picker, approvals, answer

The gate does the work (lab_helpers.tools.approval): it holds the pending calls, records decisions
and grants one run per approval. `ApprovalWidget` only shows `gate.pending()` — server, tool,
pretty arguments — and turns Approve / Deny / Always clicks into `gate.resolve(...)`. The agent's
tool loop runs on a background thread and waits inside the gate while the buttons are shown, so
the conversation continues with the results as soon as a button is clicked. The buttons show
only while a call waits (disabled buttons in the success/danger colours looked clickable).
Nothing prints.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets

from ..mcp.agent import McpAgent
from ..tools.approval import ApprovalGate, Choice, PendingApproval
from ..tools.loop import Transcript, named
from .shared import Controls, captured, error_html, note_html
from .tool_transcript import transcript_html

_BOX = ("border:1px solid #d0d7de;border-radius:4px;padding:6px 10px;margin:4px 0;"
        "background:#fffbe6;line-height:1.4")
# A widget's HTML inherits a line height of a whole widget row (28 px): JSON in a <pre> then
# reads double-spaced unless the <pre> sets its own.
PRE_STYLE = ("margin:4px 0;padding:4px 6px;background:#fff;border-radius:3px;line-height:1.3;"
             "white-space:pre-wrap;font-size:90%")


def pending_html(p: PendingApproval) -> str:
    return (f'<div class="approval-pending" style="{_BOX}"><b>Approve this tool call?</b><br>'
            f'server <code>{html.escape(p.identity.server)}</code> · tool '
            f'<code>{html.escape(p.identity.tool)}</code>'
            f'<pre style="{PRE_STYLE}">{html.escape(p.pretty_arguments())}</pre></div>')


class ApprovalWidget(widgets.VBox):
    """The oldest pending call of a gate, with Approve / Deny / Approve always buttons."""

    def __init__(self, gate: ApprovalGate) -> None:
        self._gate = gate
        self._current: PendingApproval | None = None
        self._refresh_lock = threading.Lock()
        self._card = widgets.HTML()
        self._approve = widgets.Button(description="Approve", button_style="success")
        self._deny = widgets.Button(description="Deny", button_style="danger")
        self._always = widgets.Button(description="Approve always",
                                      tooltip="approve every later call of this tool")
        self._history = widgets.HTML()
        self._error = widgets.HTML()
        self._approve.on_click(lambda _: self._decide("approve"))
        self._deny.on_click(lambda _: self._decide("deny"))
        self._always.on_click(lambda _: self._decide("approve_always"))
        self._decisions: list[str] = []
        gate.on_pending = lambda _p: self.refresh()
        super().__init__([self._card, widgets.HBox([self._approve, self._deny, self._always]),
                          self._history, self._error])
        self.add_class("lab-approval")
        self.refresh()

    @property
    def controls(self) -> Controls:
        """The buttons: approve, deny, always."""
        return Controls(approve=self._approve, deny=self._deny, always=self._always)

    @property
    def card(self) -> str:
        """The call waiting now, or "nothing waits" (HTML)."""
        return self._card.value

    @property
    def current(self) -> PendingApproval | None:
        """The call the buttons decide now (None when nothing waits)."""
        return self._current

    @property
    def decisions(self) -> list[str]:
        return list(self._decisions)

    def refresh(self) -> None:
        with self._refresh_lock:
            waiting = self._gate.pending()
            self._current = next((p for p in waiting if p.choice is None), None)
            if self._current is None:
                self._card.value = '<div class="approval-idle" style="color:#555"><i>No tool ' \
                                   'call is waiting for approval.</i></div>'
            else:
                more = len(waiting) - 1
                self._card.value = pending_html(self._current) + (
                    f"<i>{more} more waiting</i>" if more > 0 else "")
            for b in (self._approve, self._deny, self._always):
                b.disabled = self._current is None
                b.layout.display = "none" if self._current is None else ""

    @captured
    def _decide(self, choice: Choice) -> None:
        self._error.value = ""
        pending = self._current
        if pending is None:
            return
        self._gate.resolve(pending.id, choice)
        self._decisions.append(f"{pending.identity.label}: {choice}")
        self._history.value = "<br>".join(
            f'<span class="approval-decision">{html.escape(d)}</span>'
            for d in self._decisions[-8:])
        self.refresh()

    def _show_error(self, exc: BaseException) -> None:
        self._error.value = error_html(exc)


class AgentChat(widgets.VBox):
    """Ask the agent; approve its calls; read the transcript. The tool picker forces a call of
    one tool (a 135M model does not pick tools by itself), or leaves it to the model (auto)."""

    def __init__(self, agent: McpAgent, *, tools: list[str] | None = None) -> None:
        self._agent = agent
        names = tools or agent.registry.names
        self._message = widgets.Textarea(placeholder="Ask ACME's assistant ...", rows=3,
                                         layout=widgets.Layout(width="60%"))
        self._tool = widgets.Dropdown(options=["auto (the model decides)"] + names,
                                      description="Tool:")
        self._send_button = widgets.Button(description="Send", button_style="primary")
        self._status = widgets.HTML()
        self._approvals = ApprovalWidget(agent.gate)
        self._transcript = widgets.HTML()
        self._send_button.on_click(lambda _: self._start())
        self._thread: threading.Thread | None = None
        self.last: Transcript | None = None
        row = widgets.HBox([self._message, self._tool, self._send_button])
        super().__init__([row, self._status, self._approvals, self._transcript])
        self.add_class("lab-agent-chat")

    @property
    def controls(self) -> Controls:
        """The inputs: message, tool (the picker), send."""
        return Controls(message=self._message, tool=self._tool, send=self._send_button)

    @property
    def status(self) -> str:
        """The message line: working, notes and errors (HTML)."""
        return self._status.value

    @property
    def approvals(self) -> ApprovalWidget:
        return self._approvals

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float = 600) -> Transcript | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.last

    @captured
    def _start(self) -> None:
        text = self._message.value.strip()
        if self.busy:
            self._status.value = note_html("The model is still working on the last message: "
                                           "wait for its answer (or a call to approve).")
            return
        if not text:
            self._status.value = note_html("Type a message in the box first, then click Send.",
                                           "#9a6700")
            return
        tool = self._tool.value
        kwargs: dict[str, Any] = {"tool_choice": "auto", "tools": None}
        if tool in self._agent.registry:
            kwargs = {"tool_choice": named(tool), "tools": [tool]}
        self._send_button.disabled = True
        self._status.value = "<i>The model is working; tool calls will wait for you here.</i>"
        self._thread = threading.Thread(target=self._run, args=(text, kwargs), daemon=True)
        self._thread.start()

    def _run(self, text: str, kwargs: dict[str, Any]) -> None:
        try:
            self.last = self._agent.ask(text, **kwargs)
            self._transcript.value = transcript_html(self.last)
            self._status.value = ""
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            self._status.value = error_html(exc)
        finally:
            self._send_button.disabled = False
            self._approvals.refresh()

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)
