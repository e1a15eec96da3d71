"""SchemaEditor: edit a constraint, see it checked as you type, run it beside free text.

    from lab_helpers.widgets import SchemaEditor
    SchemaEditor(srv)            # a Server, a lab server's name, or a StructuredClient

A view on `lab_helpers.structured.editor.SchemaEditorModel`: the model holds the mode, the
text, the prompt and the results, and does the checks and requests; the widget forwards edits
and clicks and shows what comes back. Run sends the prompt twice on a background thread —
with the constraint and without — and shows both answers side by side, each with its verdict.
A malformed constraint disables nothing silently: Run refuses it and says what and where,
in words and with what to change (never which Python call to make). A new Run clears the last
answers first, so an error never sits under answers of an earlier constraint. The preset
picker shows the preset loaded, or "Custom" once the text is edited.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..structured.checks import MODES
from ..structured.client import StructuredClient, StructuredResult
from ..structured.editor import Comparison, SchemaEditorModel
from .chat_settings import LABEL_STYLE
from .shared import Controls, captured, error_html, note_html

if TYPE_CHECKING:
    from ..server import Server

CUSTOM = "Custom"


def _result_html(title: str, result: StructuredResult) -> str:
    verdict = result.verdict
    if verdict is None:
        mark = '<span style="color:#777">not checked</span>'
    elif verdict.valid:
        mark = '<span style="color:#0a7d12;font-weight:bold">✔ valid</span>'
    else:
        mark = ('<span style="color:#a40000;font-weight:bold">✘ invalid</span>: '
                f"{html.escape(verdict.reason)}")
    tokens = result.completion_tokens if result.completion_tokens is not None else "?"
    return (
        f'<div style="border:1px solid #ccc;padding:6px;margin:2px">'
        f"<b>{html.escape(title)}</b><br>{mark}"
        f'<pre style="white-space:pre-wrap;max-height:260px;overflow:auto">'
        f"{html.escape(result.text)}</pre>"
        f'<div style="color:#777;font-size:85%">{result.latency_s:.2f} s · {tokens} tokens · '
        f"finish: {html.escape(str(result.finish_reason))}</div></div>"
    )


class SchemaEditor(widgets.VBox):
    """Preset picker, mode, editor with live validation, prompt, Run, the two answers."""

    def __init__(self, target: Server | str | StructuredClient | SchemaEditorModel,
                 *, preset: str = "Support ticket (JSON)") -> None:
        if isinstance(target, SchemaEditorModel):
            self._model = target
        else:
            client = target if isinstance(target, StructuredClient) else StructuredClient(target)
            self._model = SchemaEditorModel(client, preset=preset)
        self._thread: threading.Thread | None = None
        self._syncing = False

        self._preset = widgets.Dropdown(
            description="Preset", options=[*self._model.presets, CUSTOM],
            value=self._model.preset or CUSTOM, layout={"width": "360px"},
            tooltip="a constraint to start from; edit it below")
        self._mode = widgets.ToggleButtons(options=list(MODES), value=self._model.mode,
                                           description="Mode")
        self._text = widgets.Textarea(value=self._model.text,
                                      layout={"width": "98%", "height": "180px"})
        self._check = widgets.HTML()
        self._prompt = widgets.Textarea(value=self._model.prompt, description="Prompt",
                                        placeholder="What the model is asked",
                                        layout={"width": "98%", "height": "60px"})
        self._max_tokens = widgets.IntText(value=self._model.max_tokens, style=LABEL_STYLE,
                                           description="max_tokens", layout={"width": "190px"},
                                           tooltip="the longest answer, in tokens (1 or more)")
        self._run = widgets.Button(description="Run", button_style="primary", icon="play")
        self._constrained = widgets.HTML()
        self._free = widgets.HTML()
        self._status = widgets.HTML()

        self._preset.observe(self._on_preset, names="value")
        self._mode.observe(self._on_mode, names="value")
        self._text.observe(self._on_text, names="value")
        self._prompt.observe(self._on_prompt, names="value")
        self._max_tokens.observe(self._on_max_tokens, names="value")
        self._run.on_click(self._on_run)

        super().__init__(children=[
            widgets.HBox([self._preset]),
            self._mode,
            self._text,
            self._check,
            self._prompt,
            widgets.HBox([self._max_tokens, self._run]),
            widgets.HBox([self._constrained, self._free],
                         layout={"width": "100%", "align_items": "flex-start"}),
            self._status,
        ])
        self._constrained.layout.width = self._free.layout.width = "50%"
        self._show_check()

    # -- read-only surface -------------------------------------------------------------------

    @property
    def controls(self) -> Controls:
        """The inputs: preset, mode, text (the spec), prompt, max_tokens, run."""
        return Controls(preset=self._preset, mode=self._mode, text=self._text,
                        prompt=self._prompt, max_tokens=self._max_tokens, run=self._run)

    @property
    def model(self) -> SchemaEditorModel:
        return self._model

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def check_message(self) -> str:
        """The live validation line (HTML)."""
        return self._check.value

    @property
    def result(self) -> Comparison | None:
        return self._model.last

    @property
    def status(self) -> str:
        """Errors and notes (HTML)."""
        return self._status.value

    @property
    def answers(self) -> tuple[str, str]:
        """(constrained, unconstrained) answer panes (HTML)."""
        return self._constrained.value, self._free.value

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a running Run is finished; True if nothing runs any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    # -- callbacks ---------------------------------------------------------------------------

    @captured
    def _on_preset(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] in (None, CUSTOM):
            return
        self._model.load_preset(change["new"])
        # Setting the controls fires their observers, which write the same values back.
        self._mode.value = self._model.mode
        self._text.value = self._model.text
        self._prompt.value = self._model.prompt
        self._max_tokens.value = self._model.max_tokens
        self._show_check()

    @captured
    def _on_mode(self, change: dict[str, Any]) -> None:
        self._model.mode = change["new"]
        self._show_check()
        self._sync_preset()

    @captured
    def _on_text(self, change: dict[str, Any]) -> None:
        self._model.text = change["new"]
        self._show_check()
        self._sync_preset()

    @captured
    def _on_prompt(self, change: dict[str, Any]) -> None:
        self._model.prompt = change["new"]

    @captured
    def _on_max_tokens(self, change: dict[str, Any]) -> None:
        if change["new"] < 1:
            self._status.value = note_html(
                f"max_tokens {change['new']} is not allowed: it must be a whole number, 1 or "
                f"more. It stays at {self._model.max_tokens}.", "#9a6700")
            self._max_tokens.value = self._model.max_tokens
            return
        self._model.max_tokens = int(change["new"])

    @captured
    def _on_run(self, _button: widgets.Button) -> None:
        if self.busy:
            self._status.value = note_html("Still running: wait for the answers.")
            return
        # The last answers go first: they belong to the constraint as it was then.
        self._constrained.value = self._free.value = ""
        self._model.last = None
        self._model.constraint()  # a malformed constraint raises here, shown by @captured
        self._status.value = note_html("Running: constrained, then unconstrained…")
        self._run.disabled = True
        self._thread = threading.Thread(target=self._run_both, name="vllm-lab-schema-editor",
                                        daemon=True)
        self._thread.start()

    # -- work and display --------------------------------------------------------------------

    def _run_both(self) -> None:
        try:
            comparison = self._model.run()
            self._constrained.value = _result_html("With the constraint",
                                                   comparison.constrained)
            self._free.value = _result_html("Same prompt, unconstrained",
                                            comparison.unconstrained)
            self._status.value = ""
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never a traceback
            self._show_error(exc)
        finally:
            self._run.disabled = False

    def _sync_preset(self) -> None:
        """The picker shows the preset the text still is, else Custom (without loading)."""
        self._syncing = True
        try:
            self._preset.value = self._model.preset or CUSTOM
        finally:
            self._syncing = False

    def _show_check(self) -> None:
        ok, message = self._model.check()
        color = "#0a7d12" if ok else "#a40000"
        self._check.value = note_html(("✔ " if ok else "✘ ") + message, color)

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)
