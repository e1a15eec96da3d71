"""One server's row in the ServerPanel: title, state, Start/Stop, Log toggle, command, log.

A row starts and stops its server on a thread of its own and follows the log while "Log" is on;
the panel (server_panel.py) owns the rows and the poller that refreshes their states.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets

from .. import server
from ..server import RuntimeKind, ServerInfo
from ..server.config import ServerConfig
from .shared import Controls, captured, error_html, note_html

STATE_COLORS = {"healthy": "#1a7f37", "starting": "#9a6700", "stopping": "#9a6700",
                "unhealthy": "#cf222e", "stopped": "#6e7781"}


class ServerRow(widgets.VBox):
    """One server: title, state, Start/Stop, Log toggle, command preview, log, messages."""

    def __init__(self, name: str, config: ServerConfig | None, runtime: RuntimeKind,
                 log_tail: int, on_action: Any = None) -> None:
        self.name = name
        self._on_action = on_action or (lambda: None)
        self._config = config
        self._runtime = runtime
        self._log_tail = log_tail
        self._busy: str | None = None  # "starting" / "stopping" while a thread works
        self._worker: threading.Thread | None = None
        self._state_text = "stopped"
        self._info: ServerInfo | None = None
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()

        self._title = widgets.HTML()
        self._state = widgets.HTML(layout={"width": "170px"})
        self._start = widgets.Button(description="Start", icon="play",
                                     disabled=config is None,
                                     tooltip="" if config else "config unknown: started elsewhere")
        self._stop = widgets.Button(description="Stop", icon="stop", disabled=True)
        self._show_log = widgets.ToggleButton(description="Log", icon="file-text-o", value=False)
        self._preview = widgets.HTML()
        self._log = widgets.Textarea(disabled=True, rows=12,
                                     layout={"width": "98%", "display": "none"})
        self._status = widgets.HTML()

        self._start.on_click(self._on_start)
        self._stop.on_click(self._on_stop)
        self._show_log.observe(self._on_show_log, names="value")

        super().__init__(
            children=[
                widgets.HBox([self._state, self._title, self._start, self._stop,
                              self._show_log]),
                self._preview, self._log, self._status,
            ],
            layout={"border": "1px solid #d0d7de", "padding": "4px", "margin": "2px 0"},
        )
        self._render_title()
        self._render_preview()
        self.update(None, False)

    # -- read-only surface -------------------------------------------------------------------

    @property
    def controls(self) -> Controls:
        """The inputs: start, stop, show_log (the Log toggle)."""
        return Controls(start=self._start, stop=self._stop, show_log=self._show_log)

    @property
    def preview(self) -> str:
        """The command that Start runs (HTML)."""
        return self._preview.value

    @property
    def state(self) -> str:
        """'healthy', 'unhealthy', 'starting', 'stopping' or 'stopped'."""
        return self._state_text

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    @property
    def log_text(self) -> str:
        return self._log.value

    @property
    def message(self) -> str:
        return self._status.value

    def wait(self, timeout: float | None = None) -> bool:
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return not self.busy

    # -- updates from the panel --------------------------------------------------------------

    def update(self, info: ServerInfo | None, healthy: bool) -> None:
        self._info = info
        if self._busy:
            state = self._busy
        elif info is None or info.state != "running":
            state = "stopped"
        else:
            state = "healthy" if healthy else "unhealthy"
        self._state_text = state
        detail = f" ({info.state})" if info is not None and info.state != "running" else ""
        color = STATE_COLORS.get(state, "#6e7781")
        self._state.value = (f'<span style="color:{color}">&#9679;</span> '
                             f"<b>{html.escape(state)}</b>{html.escape(detail)}")
        running = info is not None and info.state == "running"
        self._start.disabled = self._config is None or bool(self._busy) or running
        self._stop.disabled = bool(self._busy) or info is None
        self._render_title()

    @property
    def follows_log(self) -> bool:
        return self._show_log.value and not self._busy

    def set_config(self, config: ServerConfig) -> None:
        """Serve another model from this row (takes effect at the next Start)."""
        self._config = config
        self._render_title()
        self._render_preview()
        self.update(self._info, self.state == "healthy")

    @property
    def config(self) -> ServerConfig | None:
        return self._config

    def runtime_for_logs(self) -> server.Runtime:
        kind = self._info.runtime if self._info is not None else self._runtime
        return server.get_runtime(kind, self._config)  # type: ignore[arg-type]

    def show_log(self, text: str) -> None:
        if text != self._log.value:
            self._log.value = text

    # -- callbacks ---------------------------------------------------------------------------

    @captured
    def _on_start(self, _button: widgets.Button) -> None:
        if self._config is None or self.busy:
            return
        self._begin("starting", self._run_start)

    @captured
    def _on_stop(self, _button: widgets.Button) -> None:
        if self.busy:
            return
        self._begin("stopping", self._run_stop)

    @captured
    def _on_show_log(self, change: dict[str, Any]) -> None:
        self._log.layout.display = "" if change["new"] else "none"
        self._on_action()

    # -- worker threads ----------------------------------------------------------------------

    def _begin(self, what: str, target: Any) -> None:
        self._on_action()
        self._busy = what
        self._status.value = ""
        self.update(self._info, False)
        self._worker = threading.Thread(target=target, name=f"vllm-lab-{what}-{self.name}",
                                        daemon=True)
        self._worker.start()

    def _run_start(self) -> None:
        assert self._config is not None
        with self._lines_lock:
            self._lines = []
        self._show_log.value = True
        try:
            srv = server.start(self._config, runtime=self._runtime, on_log=self._on_log_line)
            how = "reused" if srv.reused else "started"
            self._status.value = note_html(
                f"{how} in {srv.startup_seconds or 0:.1f} s: {srv.base_url}", "#1a7f37")
            self._busy = None
            self.update(srv.info, True)
        except Exception as exc:  # noqa: BLE001 - shown in the row, never a traceback
            self._busy = None
            self._status.value = error_html(exc)
            self.update(None, False)
        finally:
            self._busy = None

    def _run_stop(self) -> None:
        try:
            server.stop(self.name)
            self._status.value = note_html("stopped")
        except Exception as exc:  # noqa: BLE001
            self._status.value = error_html(exc)
        finally:
            self._busy = None
            self.update(None, False)

    def _on_log_line(self, line: str) -> None:
        with self._lines_lock:
            self._lines.append(line)
            del self._lines[:-self._log_tail]
            text = "\n".join(self._lines)
        self._log.value = text

    # -- display -----------------------------------------------------------------------------

    def _render_title(self) -> None:
        info, config = self._info, self._config
        model = info.model_name if info else (config.model_name if config else "?")
        url = info.base_url if info else (config.base_url if config else "")
        runtime = info.runtime if info else self._runtime
        self._title.value = (f"<b>{html.escape(self.name)}</b> · {html.escape(model)} · "
                             f"<code>{html.escape(url)}</code> · {html.escape(runtime)}")

    def _render_preview(self) -> None:
        if self._config is None:
            self._preview.value = note_html("Command unknown: this server was started elsewhere.")
            return
        try:
            command = server.preview(self._config, runtime=self._runtime, multiline=True)
        except Exception as exc:  # noqa: BLE001
            self._preview.value = error_html(exc)
            return
        self._preview.value = (
            '<details><summary>command</summary><pre style="white-space:pre;overflow-x:auto;'
            f'line-height:1.35;font-size:85%">{html.escape(command)}</pre></details>'
        )

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)
