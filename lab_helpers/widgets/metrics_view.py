"""MetricsView: the server's own numbers, live, while you chat.

    from lab_helpers.widgets import MetricsView
    view = MetricsView("chat")           # a lab server name, a Server or a recorder
    view                                 # toggle Recording; the plot redraws every 2 s

Latencies and the prefix-cache hit rate are per interval ("last interval" in the summary:
the latest interval in which requests finished), never means since the server started.

The view owns no data: a `MetricsRecorder` (lab_helpers.metrics) samples /metrics on its own
thread; the view redraws its frame as a PNG on a second thread while recording.
"""

from __future__ import annotations

import html
import io
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..metrics import MetricsRecorder, plot_metrics
from .shared import Controls, captured, error_html, note_html

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ..server import Server


class MetricsView(widgets.VBox):
    """A Recording toggle, a summary line and four plots of a MetricsRecorder."""

    def __init__(self, source: MetricsRecorder | Server | str = "chat", *,
                 interval: float = 1.0, redraw_interval: float = 2.0,
                 record: bool = False) -> None:
        self._source = source
        self._interval = interval
        self._redraw_interval = redraw_interval
        self._recorder: MetricsRecorder | None = None
        self._fig: Figure | None = None
        self._halt = threading.Event()
        self._drawer: threading.Thread | None = None
        self._draw_lock = threading.Lock()

        self._toggle = widgets.ToggleButton(description="Recording", icon="circle",
                                            value=False, tooltip="sample /metrics")
        self._clear = widgets.Button(description="Clear", icon="trash")
        self._summary = widgets.HTML()
        self._plot = widgets.Image(format="png", layout={"width": "760px"})
        self._status = widgets.HTML()

        self._toggle.observe(self._on_toggle, names="value")
        self._clear.on_click(self._on_clear)
        super().__init__(children=[widgets.HBox([self._toggle, self._clear]), self._summary,
                                   self._plot, self._status])
        self._connect()
        if record:
            self._toggle.value = True

    # -- read-only surface -------------------------------------------------------------------

    @property
    def controls(self) -> Controls:
        """The inputs: record (the Recording toggle), clear."""
        return Controls(record=self._toggle, clear=self._clear)

    @property
    def recorder(self) -> MetricsRecorder | None:
        return self._recorder

    @property
    def recording(self) -> bool:
        return self._recorder is not None and self._recorder.running

    @property
    def summary(self) -> str:
        return self._summary.value

    @property
    def message(self) -> str:
        return self._status.value

    @property
    def image(self) -> bytes:
        """The latest plot as PNG bytes (empty before the first redraw)."""
        return bytes(self._plot.value)

    def redraw(self) -> None:
        """Plot everything recorded so far (and update the summary line)."""
        if self._recorder is None:
            return
        frame = self._recorder.frame()
        with self._draw_lock:
            self._fig = plot_metrics(frame, fig=self._fig)
            buffer = io.BytesIO()
            self._fig.savefig(buffer, format="png", dpi=80)
        self._plot.value = buffer.getvalue()
        self._summary.value = self._summary_html(frame)
        if self._recorder.last_error:
            self._status.value = note_html(f"Last sample failed: {self._recorder.last_error}",
                                           "#a40000")
        else:
            self._status.value = ""

    def close(self) -> None:
        self._toggle.value = False
        self._stop()
        super().close()

    # -- callbacks ---------------------------------------------------------------------------

    @captured
    def _on_toggle(self, change: dict[str, Any]) -> None:
        if change["new"]:
            if self._recorder is None and not self._connect():
                self._toggle.value = False
                return
            assert self._recorder is not None
            self._recorder.start()
            self._halt.clear()
            self._drawer = threading.Thread(target=self._draw_loop, name="vllm-lab-metrics-view",
                                            daemon=True)
            self._drawer.start()
        else:
            self._stop()
            self.redraw()

    @captured
    def _on_clear(self, _button: widgets.Button) -> None:
        if self._recorder is not None:
            self._recorder.clear()
            self.redraw()

    # -- internals ---------------------------------------------------------------------------

    def _connect(self) -> bool:
        if self._recorder is not None:
            return True
        try:
            if isinstance(self._source, MetricsRecorder):
                self._recorder = self._source
            else:
                self._recorder = MetricsRecorder(self._source, interval=self._interval)
        except Exception as exc:  # noqa: BLE001 - e.g. the server is not running
            self._show_error(exc)
            return False
        self._status.value = ""
        return True

    def _stop(self) -> None:
        self._halt.set()
        drawer = self._drawer
        if drawer is not None and drawer is not threading.current_thread():
            drawer.join(timeout=10)
        self._drawer = None
        if self._recorder is not None:
            self._recorder.stop()

    def _draw_loop(self) -> None:
        while not self._halt.wait(self._redraw_interval):
            try:
                self.redraw()
            except Exception as exc:  # noqa: BLE001 - keep drawing; show what went wrong
                self._show_error(exc)

    @staticmethod
    def _summary_html(frame: pd.DataFrame) -> str:
        """The latest sample per model; per-interval figures from the last interval with data."""
        if frame.empty:
            return note_html("No samples yet.")

        def latest(group: pd.DataFrame, column: str, fmt: str, scale: float = 1.0) -> str:
            values = group[column].dropna()
            return "n/a" if values.empty else fmt.format(scale * float(values.iloc[-1]))

        parts = []
        for model, group in frame.groupby("model", sort=False):
            last = group.iloc[-1]
            parts.append(
                f"<b>{html.escape(str(model))}</b>: KV cache "
                f"{latest(group, 'kv_cache_usage_pct', '{:.2f} %')} · "
                f"running {last['requests_running']:.0f} · waiting "
                f"{last['requests_waiting']:.0f} · generated "
                f"{last['generation_tokens_total']:.0f} tokens<br>"
                f"last interval: prompt {latest(group, 'prompt_tokens_per_s', '{:.1f}')} tok/s · "
                f"generated {latest(group, 'generation_tokens_per_s', '{:.1f}')} tok/s · "
                f"TTFT {latest(group, 'ttft_s', '{:.0f} ms', 1000)} · "
                f"inter-token {latest(group, 'itl_s', '{:.1f} ms', 1000)} · "
                f"end-to-end {latest(group, 'e2e_s', '{:.2f} s')} · "
                f"prefix-cache hits {latest(group, 'prefix_cache_hit_rate', '{:.0f} %', 100)} · "
                f"preemptions since start {last['preemptions_total']:.0f}"
            )
        return "<br>".join(parts)

    def _show_error(self, exc: BaseException) -> None:
        self._status.value = error_html(exc)
