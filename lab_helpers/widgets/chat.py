"""ChatWidget: chat with a lab server in a notebook, watching each answer stream in.

    from lab_helpers.widgets import ChatWidget
    ChatWidget()                      # the "chat" server; ChatWidget(session) for your own

The widget is a view on a `ChatSession` (lab_helpers.chat): the session holds the conversation
and does the requests, the widget only forwards clicks and settings to it and shows what it
returns. Answers stream on a background thread, so the notebook stays responsive and Stop
works. Nothing here prints: everything shows in widget values, errors included (what happened
and how to fix it, never a traceback).
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import ipywidgets as widgets

from ..chat import (
    DEFAULT_SERVER,
    ChatSession,
    Endpoint,
    ServerUnavailable,
)
from ..chat.presets import SYSTEM_PRESETS
from ..errors import LabError
from .chat_html import answer_html, downloads_html, stats_html, turn_html
from .chat_settings import SliderSetting, max_tokens_box
from .markdown_html import CODE_STYLE
from .shared import Controls, captured, error_html, note_html

# How often the streamed answer is pushed to the browser (seconds): each push is a message.
REFRESH_S = 0.05
CUSTOM = "Custom"

F = TypeVar("F", bound=Callable[..., Any])

# The session's own defaults, so the controls start where a bare ChatSession() does.
_DEFAULTS = {
    name: param.default
    for name, param in inspect.signature(ChatSession.__init__).parameters.items()
    if param.default is not inspect.Parameter.empty
}


def _preset_of(prompt: str) -> str:
    return next((name for name, text in SYSTEM_PRESETS.items() if text == prompt), CUSTOM)


# -- the widget --------------------------------------------------------------------------------


class ChatWidget(widgets.VBox):
    """Chat UI over a ChatSession: settings, model picker, streamed answer, per-answer metrics.

    `session` defaults to a ChatSession on the "chat" lab server. `endpoints` are the choices of
    the model picker (default: every running lab chat server); the picker shows only when there
    is more than one. If no server is running, the widget says how to start one; the "Find
    servers" button looks again. A setting outside its allowed range is reported in the message
    line, never changed without a word.
    """

    def __init__(self, session: ChatSession | None = None, *,
                 endpoints: list[Endpoint] | None = None, **session_kwargs: Any) -> None:
        self._session = session
        self._session_kwargs = session_kwargs
        self._thread: threading.Thread | None = None

        self._model = widgets.Dropdown(description="Model", layout={"width": "420px"})
        self._refresh = widgets.Button(description="Find servers", icon="refresh",
                                       tooltip="look again for running lab chat servers",
                                       layout={"width": "auto"})
        self._system = widgets.Textarea(
            description="System", layout={"width": "98%", "height": "60px"},
            value=session.system_prompt if session else _DEFAULTS["system_prompt"],
        )
        self._preset = widgets.Dropdown(
            description="Preset", options=[*SYSTEM_PRESETS, CUSTOM],
            value=_preset_of(self._system.value), layout={"width": "320px"},
            tooltip="a system prompt to start from; edit it below",
        )
        self._status = widgets.HTML()
        temperature = SliderSetting(
            "temperature", low=0.0, high=2.0, step=0.05, on_outside=self._show_note,
            value=session.temperature if session else _DEFAULTS["temperature"],
            tooltip="0: the same answer every time; higher: more varied")
        top_p = SliderSetting(
            "top_p", low=0.01, high=1.0, step=0.01, on_outside=self._show_note,
            value=session.top_p if session else _DEFAULTS["top_p"],
            tooltip="sample only from the most likely words that add up to this share")
        self._temperature, self._temperature_box = temperature.slider, temperature.box
        self._top_p, self._top_p_box = top_p.slider, top_p.box
        self._max_tokens = max_tokens_box(
            session.max_tokens if session else _DEFAULTS["max_tokens"],
            "the longest answer, in tokens (1 or more)")
        self._history = widgets.HTML()
        self._answer = widgets.HTML()
        self._metrics = widgets.HTML()
        self._message = widgets.Textarea(placeholder="Ask something, then click Send",
                                         layout={"width": "98%", "height": "60px"})
        self._send = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self._stop = widgets.Button(description="Stop", icon="stop", disabled=True)
        self._clear = widgets.Button(description="Clear", icon="trash")
        self._export = widgets.Button(description="Export", icon="download",
                                      tooltip="the conversation as JSON and Markdown")
        self._downloads = widgets.HTML()

        self._send.on_click(self._on_send)
        self._stop.on_click(self._on_stop)
        self._clear.on_click(self._on_clear)
        self._export.on_click(self._on_export)
        self._preset.observe(self._on_preset, names="value")
        self._refresh.on_click(self._on_refresh)
        self._model.observe(self._on_model, names="value")
        self._system.observe(self._on_system, names="value")
        self._temperature.observe(self._on_temperature, names="value")
        self._top_p.observe(self._on_top_p, names="value")
        self._max_tokens.observe(self._on_max_tokens, names="value")
        if session is not None:  # a value the sliders had to move (and said so) applies
            session.temperature, session.top_p = self._temperature.value, self._top_p.value

        super().__init__(children=[
            widgets.HBox([self._model, self._refresh]),
            self._preset,
            self._system,
            widgets.HBox([temperature, top_p, self._max_tokens],
                         layout={"flex_flow": "row wrap", "align_items": "center"}),
            self._history,
            self._answer,
            self._metrics,
            self._message,
            widgets.HBox([self._send, self._stop, self._clear, self._export]),
            self._downloads,
            self._status,
            widgets.HTML(CODE_STYLE),
        ])
        if session is not None:
            self._history.value = "".join(turn_html(t) for t in session.history)
        self._set_endpoints(endpoints)

    # -- read-only surface -------------------------------------------------------------------

    @property
    def controls(self) -> Controls:
        """The inputs: model, refresh, preset, system, temperature and top_p (sliders),
        temperature_box and top_p_box (the boxes to type them in), max_tokens, message, send,
        stop, clear, export."""
        return Controls(model=self._model, refresh=self._refresh, preset=self._preset,
                        system=self._system, temperature=self._temperature, top_p=self._top_p,
                        temperature_box=self._temperature_box, top_p_box=self._top_p_box,
                        max_tokens=self._max_tokens, message=self._message, send=self._send,
                        stop=self._stop, clear=self._clear, export=self._export)

    @property
    def history(self) -> str:
        """The finished turns as shown (HTML)."""
        return self._history.value

    @property
    def session(self) -> ChatSession | None:
        return self._session

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def answer(self) -> str:
        """The latest answer area (HTML)."""
        return self._answer.value

    @property
    def metrics_line(self) -> str:
        """The metrics line under the latest answer (HTML)."""
        return self._metrics.value

    @property
    def preset(self) -> str:
        """The system-prompt preset in use ("Custom" once the prompt is edited)."""
        return self._preset.value

    @property
    def downloads(self) -> str:
        """The export links (HTML), after Export was clicked."""
        return self._downloads.value

    @property
    def status(self) -> str:
        """The message line: errors and what to do about them (HTML)."""
        return self._status.value

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running answer is finished; True if nothing is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy

    def refresh_models(self) -> None:
        """Look for running lab chat servers again (the model picker's choices)."""
        self._set_endpoints(None)

    # -- callbacks ---------------------------------------------------------------------------

    @captured
    def _on_send(self, _button: widgets.Button) -> None:
        if self.busy:
            self._status.value = note_html("An answer is still streaming: Stop it first.")
            return
        if self._session is None:
            self._set_endpoints(None)
            if self._session is None:
                return
        self._status.value = ""
        self._set_busy(True)
        self._thread = threading.Thread(target=self._generate, args=(self._message.value,),
                                        name="vllm-lab-chat", daemon=True)
        self._thread.start()

    @captured
    def _on_stop(self, _button: widgets.Button) -> None:
        # The streaming thread ends the turn and says so; stopping takes one token at most.
        if self._session is not None:
            self._session.stop()

    @captured
    def _on_clear(self, _button: widgets.Button) -> None:
        if self._session is None:
            return
        if self.busy:
            self._session.stop()
            self.wait(5.0)
        self._session.clear()
        self._history.value = self._answer.value = self._metrics.value = ""
        self._status.value = note_html("Conversation cleared.")

    @captured
    def _on_refresh(self, _button: widgets.Button) -> None:
        self.refresh_models()

    @captured
    def _on_model(self, change: dict[str, Any]) -> None:
        endpoint = change["new"]
        if self._session is None or endpoint is None or endpoint == self._session.endpoint:
            return
        self._session.use(endpoint)
        self._status.value = note_html(f"Now chatting with {endpoint.label}.")

    @captured
    def _on_system(self, change: dict[str, Any]) -> None:
        if self._session is not None:
            self._session.system_prompt = change["new"]
        preset = _preset_of(change["new"])
        if preset != self._preset.value:
            self._preset.value = preset

    @captured
    def _on_preset(self, change: dict[str, Any]) -> None:
        if change["new"] != CUSTOM and self._system.value != SYSTEM_PRESETS[change["new"]]:
            self._system.value = SYSTEM_PRESETS[change["new"]]

    @captured
    def _on_export(self, _button: widgets.Button) -> None:
        if self._session is None:
            return
        self._downloads.value = downloads_html(self._session.export_json(),
                                               self._session.export_markdown(),
                                               time.strftime("%Y%m%d-%H%M%S"))

    @captured
    def _on_temperature(self, change: dict[str, Any]) -> None:
        if self._session is not None:
            self._session.temperature = change["new"]

    @captured
    def _on_top_p(self, change: dict[str, Any]) -> None:
        if self._session is not None:
            self._session.top_p = change["new"]

    @captured
    def _on_max_tokens(self, change: dict[str, Any]) -> None:
        if change["new"] < 1:
            kept = self._session.max_tokens if self._session else _DEFAULTS["max_tokens"]
            self._show_note(f"max_tokens {change['new']} is not allowed: it must be a whole "
                            f"number, 1 or more. It stays at {kept}.")
            self._max_tokens.value = kept
            return
        if self._session is not None:
            self._session.max_tokens = change["new"]

    # -- the streaming thread ----------------------------------------------------------------

    def _generate(self, text: str) -> None:
        session = self._session
        assert session is not None
        try:
            pieces = session.send(text)  # checks the input: raises before anything changes
            self._message.value = ""
            self._history.value = "".join(turn_html(t) for t in session.history)
            self._metrics.value = ""
            self._answer.value = self._answer_html(text, "")
            answer, pushed = "", 0.0
            for piece in pieces:
                answer += piece
                now = time.monotonic()
                if now - pushed >= REFRESH_S:
                    self._answer.value = self._answer_html(text, answer)
                    pushed = now
            turn = session.history[-1]
            self._answer.value = self._answer_html(text, turn.answer, stopped=turn.stopped)
            self._metrics.value = stats_html(turn)
            self._status.value = (note_html("Stopped: the partial answer stays in the history.")
                                  if turn.stopped else "")
        except ServerUnavailable as exc:
            # The session rolled the turn back: put the message back so Send resends it.
            if exc.unsent and not self._message.value:
                self._message.value = exc.unsent
            self._answer.value = self._metrics.value = ""
            self._status.value = error_html(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never a traceback
            self._show_error(exc)
        finally:
            self._set_busy(False)

    # -- display -----------------------------------------------------------------------------

    def _answer_html(self, user: str, text: str, stopped: bool = False) -> str:
        model = self._session.model if self._session else "Assistant"
        return answer_html(model, user, text, stopped)

    def _show_note(self, text: str) -> None:
        self._status.value = note_html(text, "#9a6700")

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)

    def _set_busy(self, busy: bool) -> None:
        self._send.disabled = busy
        self._clear.disabled = busy
        self._export.disabled = busy
        self._model.disabled = busy
        self._stop.disabled = not busy

    def _set_endpoints(self, endpoints: list[Endpoint] | None) -> None:
        """Fill the model picker; create the session if there was none yet."""
        if endpoints is None:
            try:
                endpoints = ChatSession.lab_endpoints()
            except Exception as exc:  # noqa: BLE001
                endpoints = []
                self._show_error(exc)
        if self._session is None:
            self._session = self._new_session(endpoints)
        if self._session is None:
            self._model.options = []
            self._model.layout.display = "none"
            self._send.disabled = True
            return
        current = self._session.endpoint
        choices = list(endpoints)
        if current not in choices:
            same = [e for e in choices if (e.base_url, e.model) == (current.base_url,
                                                                     current.model)]
            choices = [current] + [e for e in choices if e not in same]
        self._model.unobserve(self._on_model, names="value")
        try:
            self._model.options = [(e.label, e) for e in choices]
            self._model.value = current
        finally:
            self._model.observe(self._on_model, names="value")
        self._model.layout.display = "" if len(choices) > 1 else "none"
        self._send.disabled = self.busy

    def _new_session(self, endpoints: list[Endpoint]) -> ChatSession | None:
        settings = {
            "system_prompt": self._system.value, "temperature": self._temperature.value,
            "top_p": self._top_p.value, "max_tokens": self._max_tokens.value,
            **self._session_kwargs,
        }
        preferred = [e for e in endpoints if e.server_name == DEFAULT_SERVER] or endpoints
        if not preferred:
            self._status.value = error_html(LabError(
                "No lab chat server is running.",
                fix="start one: vllm-lab up   (in a terminal), then click Find servers",
            ))
            return None
        return ChatSession(preferred[0], **settings)
