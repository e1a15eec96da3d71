"""TranscriptView: what happened in a tool loop, step by step.

    from lab_helpers.widgets import TranscriptView
    TranscriptView([t1, t2, ...])        # Transcripts from ToolLoop.run; a picker if several

Each step is shown in order: the customer's message, every tool call with its arguments, the
result the executor returned (from the database, or the error the model was told), and the
final answer, with the tool_choice, round count and time in the header. The view only renders
`Transcript` objects (lab_helpers.tools.loop); `add()` appends one, e.g. from a loop the
notebook just ran. Nothing here prints.
"""

from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as widgets

from ..tools.executor import ToolResult
from ..tools.loop import Transcript, choice_label
from ..tools.registry import ToolCall
from .shared import captured, error_html

_STATUS_COLORS = {"ok": "#1a7f37", "error": "#a40000", "denied": "#9a6700",
                  "unknown_tool": "#a40000", "invalid_arguments": "#a40000"}
_BOX = ("border-left:3px solid {color};padding:4px 8px;margin:4px 0;"
        "background:#f8f8f8;white-space:pre-wrap;font-family:monospace;font-size:90%;"
        "line-height:1.3")  # not the widget row's 28 px, which spaced JSON double


def _pretty(text_or_value: Any) -> str:
    if isinstance(text_or_value, str):
        try:
            text_or_value = json.loads(text_or_value)
        except json.JSONDecodeError:
            return text_or_value
    return json.dumps(text_or_value, indent=2, default=str, ensure_ascii=False)


def _step_html(kind: str, payload: Any) -> str:
    if kind == "user":
        return (f'<div class="tt-step tt-user"><b>Customer:</b> '
                f'{html.escape(payload)}</div>')
    if kind == "text":
        return (f'<div class="tt-step tt-text"><b>Model (with its calls):</b> '
                f'<span style="white-space:pre-wrap">{html.escape(payload)}</span></div>')
    if kind == "call":
        call: ToolCall = payload
        return (f'<div class="tt-step tt-call"><b>Tool call:</b> '
                f'<code>{html.escape(call.name)}</code>'
                f'<div style="{_BOX.format(color="#0969da")}">'
                f'{html.escape(_pretty(call.arguments))}</div></div>')
    if kind == "result":
        result: ToolResult = payload
        color = _STATUS_COLORS.get(result.status, "#555")
        where = "from the ACME database" if result.ran else "nothing ran"
        return (f'<div class="tt-step tt-result"><b>Result</b> '
                f'<span style="color:{color}">[{html.escape(result.status)}]</span> '
                f'<i>({where})</i>'
                f'<div style="{_BOX.format(color=color)}">'
                f'{html.escape(_pretty(result.content))}</div></div>')
    if kind == "answer":
        return (f'<div class="tt-step tt-answer"><b>Answer:</b> '
                f'<span style="white-space:pre-wrap">{html.escape(payload)}</span></div>')
    return ""


def transcript_html(t: Transcript) -> str:
    """The whole transcript as HTML (the widget shows exactly this)."""
    choice = (", ".join(choice_label(c) for c in t.tool_choice)
              if isinstance(t.tool_choice, list) else choice_label(t.tool_choice))
    head = (f'<div class="tt-head" style="color:#555">tool_choice <b>{html.escape(choice)}'
            f'</b> · {len(t.rounds)} round(s) · {len(t.calls)} call(s) · '
            f'{t.seconds:.1f} s · stop: {html.escape(str(t.stop_reason))} · '
            f'{html.escape(t.model)}</div>')
    steps = "".join(_step_html(kind, payload) for kind, payload in t.steps())
    if not t.calls:
        steps += '<div class="tt-step tt-nocall" style="color:#555"><i>No tool was called.' \
                 '</i></div>'
    if t.stop_reason == "max_rounds":
        steps += ('<div class="tt-step" style="color:#9a6700"><i>Stopped: the round limit '
                  'was reached before an answer.</i></div>')
    return f'<div class="tool-transcript">{head}{steps}</div>'


class TranscriptView(widgets.VBox):
    """Shows one of several transcripts; the picker appears when there is more than one."""

    def __init__(self, transcripts: Transcript | list[Transcript] | None = None) -> None:
        if isinstance(transcripts, Transcript):
            transcripts = [transcripts]
        self._transcripts: list[Transcript] = list(transcripts or [])
        self._picker = widgets.Dropdown(description="Request", layout={"width": "95%"})
        self._body = widgets.HTML()
        self._error = widgets.HTML()
        self._picker.observe(self._on_pick, names="value")
        super().__init__([self._picker, self._body, self._error])
        self.add_class("lab-tool-transcript")
        self._refresh(select=0)

    # -- read-only surface ---------------------------------------------------------------

    @property
    def transcripts(self) -> tuple[Transcript, ...]:
        return tuple(self._transcripts)

    @property
    def selected(self) -> Transcript | None:
        index = self._picker.value
        return None if index is None else self._transcripts[index]

    @property
    def html(self) -> str:
        """What the view currently shows."""
        return self._body.value

    # -- changes ---------------------------------------------------------------------------

    def add(self, transcript: Transcript) -> None:
        """Append a transcript and show it."""
        self._transcripts.append(transcript)
        self._refresh(select=len(self._transcripts) - 1)

    def select(self, index: int) -> None:
        self._picker.value = index

    def _refresh(self, select: int) -> None:
        self._picker.options = [(f"{i + 1}. {t.user[:70]}", i)
                                for i, t in enumerate(self._transcripts)]
        self._picker.layout.display = "" if len(self._transcripts) > 1 else "none"
        if self._transcripts:
            self._picker.value = select
            self._show(self._transcripts[select])
        else:
            self._body.value = '<i style="color:#555">No transcript yet: run a ToolLoop.</i>'

    @captured
    def _on_pick(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self._show(self._transcripts[change["new"]])

    def _show(self, transcript: Transcript) -> None:
        self._error.value = ""
        self._body.value = transcript_html(transcript)

    def _show_error(self, exc: BaseException) -> None:
        self._error.value = error_html(exc)
