"""RoomDashboard: the instructor's view of a room server, refreshed on a timer.

    from lab_helpers.widgets.room_dashboard import RoomDashboard
    RoomDashboard("chat")        # the room's server: a lab server name or a Server

A summary line (attendees, requests running and waiting, KV cache in use), a table of every
attendee's requests and tokens with what each is doing now (requests running, active within
the last minutes, idle), and plots over time of each attendee's requests and tokens and of the
server's load. The data comes from the server's own /metrics, sampled by a
`RoomMonitor` (lab_helpers.metrics.room); the attendees' names come from the room file, so a
revoked attendee is marked as such. Polling backs off while nothing changes.
"""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import ipywidgets as widgets

from ..metrics.room import RoomMonitor
from ..server.room import attendees
from .polling import BackoffPoller
from .shared import Controls, error_html


class RoomDashboard(widgets.VBox):
    def __init__(self, server: Any = "chat", *, interval: float = 5.0,
                 auto: bool = True) -> None:
        self._name = server if isinstance(server, str) else server.name
        self.monitor = RoomMonitor(server)
        self._lock = threading.Lock()
        self._refresh = widgets.Button(description="Refresh", icon="refresh",
                                       tooltip="read the server's /metrics now")
        self._summary = widgets.HTML()
        self._table = widgets.HTML()
        self._plot = widgets.Image(format="png", layout={"width": "720px"})
        self._status = widgets.HTML()
        self._refresh.on_click(lambda _: self.refresh())
        super().__init__(children=[self._refresh, self._summary, self._table, self._plot,
                                   self._status])
        self._poller = BackoffPoller(self.refresh, interval=interval,
                                     max_interval=max(interval, 30.0), name="room-dashboard",
                                     on_error=self._show_error)
        self.refresh()
        if auto:
            self._poller.start()

    @property
    def controls(self) -> Controls:
        return Controls(refresh=self._refresh)

    @property
    def summary(self) -> str:
        return self._summary.value

    @property
    def table_html(self) -> str:
        return self._table.value

    @property
    def plot_png(self) -> bytes:
        """The plots as PNG (empty before any attendee sent a request)."""
        return bytes(self._plot.value)

    @property
    def status(self) -> str:
        return self._status.value

    def close(self) -> None:
        self._poller.stop()
        super().close()

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)

    def refresh(self) -> bool:
        """Sample once and redraw; True when any attendee's counts changed."""
        with self._lock:  # the Refresh button and the poller's thread
            return self._refresh_now()

    def _refresh_now(self) -> bool:
        try:
            sample = self.monitor.sample()
        except Exception as exc:  # noqa: BLE001 - shown in the widget, polling goes on
            self._show_error(exc)
            return False
        self._status.value = ""
        names = set(attendees(self._name))
        kv = "?" if sample.kv_cache_usage_pct is None else f"{sample.kv_cache_usage_pct:.0f}%"
        self._summary.value = (
            f"<b>{len(names)}</b> attendees · <b>{sample.requests_running:.0f}</b> requests "
            f"running, <b>{sample.requests_waiting:.0f}</b> waiting · KV cache {kv} in use")
        table = self.monitor.table()
        rows = []
        for name in sorted(set(table.index) | names):
            row = table.loc[name] if name in table.index else None
            state = ("revoked" if name not in names else
                     str(row["now"]) if row is not None else "never")
            numbers = ([int(row[c]) for c in ("requests", "prompt_tokens", "completion_tokens")]
                       if row is not None else [0, 0, 0])
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>"
                                         for v in (name, state, *numbers)) + "</tr>")
        self._table.value = (
            "<table><tr><th>Attendee</th><th>Now</th><th>Requests</th><th>Prompt tokens</th>"
            "<th>Output tokens</th></tr>" + "".join(rows) + "</table>")
        self._draw()
        changed = len(self.monitor.samples) < 2 or (
            self.monitor.samples[-1].usage != self.monitor.samples[-2].usage)
        return changed

    def _draw(self) -> None:
        history = self.monitor.history()
        if history.empty:
            self._plot.value = b""
            return
        from matplotlib.figure import Figure  # no pyplot: this runs on the poller's thread

        fig = Figure(figsize=(7.2, 7.5))
        requests, tokens, load = fig.subplots(3, 1, sharex=True)
        for name, part in history.groupby("attendee"):
            requests.plot(part["time"], part["requests"], marker=".", label=str(name))
            tokens.plot(part["time"], part["tokens"], marker=".", label=str(name))
        requests.set_ylabel("requests (total)")
        requests.set_title("Requests per attendee")
        tokens.set_ylabel("tokens (total)")
        tokens.set_title("Tokens per attendee (prompt + output)")
        if history["attendee"].nunique() <= 12:
            requests.legend(fontsize="small", ncol=2)
        server_load = self.monitor.load_history()
        load.plot(server_load["time"], server_load["running"], marker=".", label="running")
        load.plot(server_load["time"], server_load["waiting"], marker=".", label="waiting")
        load.set_ylabel("requests")
        load.set_title("Server load")
        load.legend(fontsize="small")
        fig.autofmt_xdate()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        self._plot.value = buffer.getvalue()
