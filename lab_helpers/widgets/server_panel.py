"""ServerPanel: every lab server in one place: state and health, start/stop, command, log.

    from lab_helpers.widgets import ServerPanel
    ServerPanel()                         # the chat and embeddings servers of the cpu profile
    ServerPanel([chat_server("cpu", name="mine", port=8030)], runtime="local")

One row per configured server, plus any other running lab server it finds (those can only be
stopped: the panel does not know their config). Starting takes ~20 s and runs on a thread; the
log view shows the start as it happens and then follows the log while "Log" is on. The model
picker lists the catalog (lab_helpers.server.catalog): models this machine can serve can be
chosen for the chat row, the others say why not.

One poller thread per panel refreshes the states (`podman ps`, a health check per server):
every `poll_interval` seconds while something changes, backing off to `max_poll_interval`
while nothing does, and fast again after any click. `close()` ends it, and so does a new panel
for the same servers (re-running the notebook cell), so old panels never poll forever.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import ipywidgets as widgets

from .. import server
from ..server import RuntimeKind
from ..server.config import ServerConfig, chat_server, embedding_server
from .model_picker import ModelPicker
from .polling import BackoffPoller
from .server_row import ServerRow
from .shared import Controls, captured, error_html, note_html


class ServerPanel(widgets.VBox):
    """A row per lab server, refreshed by one poller thread while the panel is open."""

    # The live panel per set of configured server names: a new one retires the old one.
    _live: weakref.WeakValueDictionary[frozenset[str], ServerPanel] = (
        weakref.WeakValueDictionary())
    _live_lock = threading.Lock()

    def __init__(self, configs: list[ServerConfig] | None = None, *,
                 runtime: RuntimeKind = "auto", log_tail: int = 40,
                 poll_interval: float | None = 2.0, max_poll_interval: float = 30.0) -> None:
        self._runtime = runtime
        self._log_tail = log_tail
        self._signature: tuple[Any, ...] | None = None
        self._refreshes = 0
        self._rows: dict[str, ServerRow] = {}
        self._poller = BackoffPoller(
            self.refresh, busy=lambda: any(row.busy or row.follows_log
                                           for row in self._rows.values()),
            interval=poll_interval or 2.0, max_interval=max_poll_interval,
            on_error=self._show_error, name="vllm-lab-server-panel") if poll_interval else None
        self._lock = threading.Lock()

        self._header = widgets.HTML("<b>Lab servers</b>")
        self._refresh = widgets.Button(description="Refresh", icon="refresh")
        self._status = widgets.HTML()
        self._box = widgets.VBox()
        self._refresh.on_click(self._on_refresh)
        for config in self._default_configs() if configs is None else configs:
            self._add_row(config.name, config)
        chat = self._rows.get("chat")
        self._picker = ModelPicker(
            self._use_for_chat,
            current=chat.config.served_model_name if chat and chat.config else None,
            port=lambda: chat.config.port if chat and chat.config else None,
        )
        self._picker.layout.display = "" if chat is not None else "none"
        super().__init__(children=[widgets.HBox([self._header, self._refresh]), self._picker,
                                   self._box, self._status])
        self._retire_older_panel()
        self.refresh()
        if poll_interval:
            self.start_polling()

    # -- read-only surface -------------------------------------------------------------------

    @property
    def controls(self) -> Controls:
        """The inputs: refresh (the model picker has its own: `picker.controls`)."""
        return Controls(refresh=self._refresh)

    @property
    def picker(self) -> ModelPicker:
        """The model picker (shown when the panel has a chat widget to feed)."""
        return self._picker

    @property
    def rows(self) -> Mapping[str, ServerRow]:
        return MappingProxyType(self._rows)

    @property
    def polling(self) -> bool:
        return self._poller is not None and self._poller.running

    @property
    def message(self) -> str:
        return self._status.value

    @property
    def poll_delay(self) -> float:
        """Seconds until the next poll: poll_interval after a change, longer while idle."""
        return self._poller.delay if self._poller is not None else 0.0

    @property
    def refreshes(self) -> int:
        """How many times the states were read (each one a `podman ps` and health checks)."""
        return self._refreshes

    @property
    def model_choices(self) -> list[tuple[str, bool, str]]:
        """The picker's catalog entries: (model, can this machine serve it, why)."""
        return self._picker.choices

    def refresh(self) -> bool:
        """Update every row now: state, health, and the log of rows showing theirs.

        Returns whether anything changed since the previous refresh.
        """
        with self._lock:
            self._refreshes += 1
            infos = {i.name: i for i in server.list_servers()}
            for name in infos:
                if name not in self._rows:
                    self._add_row(name, None)
            signature: list[Any] = []
            for name, row in list(self._rows.items()):
                info = infos.get(name)
                healthy = (info is not None and info.state == "running"
                           and server.check_health(info.base_url, timeout=1.0))
                row.update(info, healthy)
                if row.follows_log:
                    row.show_log(row.runtime_for_logs().logs(name, tail=self._log_tail))
                signature.append((name, row.state, row.busy, info.ident if info else None,
                                  row.log_text if row.follows_log else None))
            changed = tuple(signature) != self._signature
            self._signature = tuple(signature)
            return changed

    def start_polling(self) -> None:
        if self._poller is not None:
            self._poller.start()

    def stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.stop()

    def poke(self) -> None:
        """Poll fast again now (after a click: something is about to change)."""
        if self._poller is not None:
            self._poller.poke()

    def close(self) -> None:
        self.stop_polling()
        with ServerPanel._live_lock:
            key = self._key()
            if ServerPanel._live.get(key) is self:
                del ServerPanel._live[key]
        super().close()

    # -- internals ---------------------------------------------------------------------------

    def _key(self) -> frozenset[str]:
        return frozenset(name for name, row in self._rows.items() if row.config is not None)

    def _retire_older_panel(self) -> None:
        with ServerPanel._live_lock:
            older = ServerPanel._live.get(self._key())
            ServerPanel._live[self._key()] = self
        if older is not None and older is not self:
            older.stop_polling()
            older._status.value = note_html(
                "A newer panel for these servers took over: this one no longer refreshes.")

    @captured
    def _on_refresh(self, _button: widgets.Button) -> None:
        self._status.value = ""
        self.refresh()
        self.poke()

    def _use_for_chat(self, config: ServerConfig) -> None:
        self._rows["chat"].set_config(config)
        self.poke()

    def _add_row(self, name: str, config: ServerConfig | None) -> None:
        row = ServerRow(name, config, self._runtime, self._log_tail, on_action=self.poke)
        self._rows[name] = row
        self._box.children = tuple(self._rows.values())

    def _default_configs(self) -> list[ServerConfig]:
        configs = []
        for make in (chat_server, embedding_server):
            try:
                configs.append(make("cpu"))
            except Exception as exc:  # noqa: BLE001 - e.g. models not prepared yet
                self._show_error(exc)
        return configs

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)
