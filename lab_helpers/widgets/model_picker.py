"""ModelPicker: the model catalog as a dropdown, for the server panel's chat row.

Every catalog model is listed; those this machine cannot serve carry the reason in their label
and cannot be used (ipywidgets cannot disable single options, so the Use button is disabled
instead). Using a model builds its config with `chat_server(profile, model=...)`, so parser,
template and context come from the catalog, and hands it to the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ..server.catalog import CATALOG, availability, find
from ..server.config import ServerConfig, chat_server
from ..server.gpu import gpu_status
from .shared import Controls, captured, error_html, note_html


class ModelPicker(widgets.VBox):
    """A catalog dropdown, a "Use for chat" button and a line saying what the choice needs."""

    def __init__(self, on_use: Callable[[ServerConfig], None], *, current: str | None = None,
                 port: Callable[[], int | None] = lambda: None) -> None:
        self._on_use_config = on_use
        self._port = port
        gpu = gpu_status()
        self._choices = [(e.key, *availability(e, gpu=gpu)) for e in CATALOG]
        keys = [key for key, _, _ in self._choices]
        self._picker = widgets.Dropdown(
            description="Model", layout={"width": "520px"},
            options=[(key if ok else f"✗ {key} — {why}", key) for key, ok, why in self._choices],
            value=current if current in keys else keys[0],
        )
        self._use = widgets.Button(description="Use for chat", icon="check",
                                   tooltip="serve the picked model from the chat row")
        self._note = widgets.HTML()
        self._picker.observe(self._on_pick, names="value")
        self._use.on_click(self._on_use)
        super().__init__(children=[widgets.HBox([self._picker, self._use]), self._note])
        self._render()

    @property
    def controls(self) -> Controls:
        """The inputs: pick (the model list), use."""
        return Controls(pick=self._picker, use=self._use)

    @property
    def choices(self) -> list[tuple[str, bool, str]]:
        """(model, can this machine serve it, why) for every catalog model."""
        return list(self._choices)

    @property
    def value(self) -> str:
        return self._picker.value

    @property
    def message(self) -> str:
        return self._note.value

    def _render(self) -> None:
        key = self._picker.value
        ok, why = next(((ok, why) for k, ok, why in self._choices if k == key), (False, ""))
        self._use.disabled = not ok
        self._note.value = note_html(f"{key}: {why}", "#1a7f37" if ok else "#a40000")

    @captured
    def _on_pick(self, _change: dict[str, Any]) -> None:
        self._render()

    @captured
    def _on_use(self, _button: widgets.Button) -> None:
        entry = find(self._picker.value)
        if entry is None:
            return
        ok, why = availability(entry)
        if not ok:
            self._note.value = note_html(f"{entry.key} cannot run here: {why}", "#a40000")
            return
        overrides: dict[str, Any] = {}
        port = self._port()
        if port is not None:
            overrides["port"] = port
        config = chat_server("cpu" if entry.bundled else "gpu", model=entry.key, **overrides)
        self._on_use_config(config)
        self._note.value = note_html(
            f"The chat row now serves {entry.key} (tool parser {entry.tool_call_parser}); "
            "Start applies it (a running server with another config is replaced).", "#1a7f37")

    def _show_error(self, exc: BaseException) -> None:
        self._note.value = error_html(exc)
