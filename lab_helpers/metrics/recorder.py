"""MetricsRecorder: /metrics sampled on a thread, and the per-interval figures derived from it.

Counters and histograms only grow while the server runs, so the recorder derives everything
"per interval" from consecutive samples (see `derive`). Samples go through the snapshot's
connection (`lab_helpers.connect`): a replaced server's new key is read on the first 401.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from ..connect import QUICK_TIMEOUT_S, Connection
from .parse import (
    COLUMNS,
    DERIVED,
    LATENCY_COLUMNS,
    MetricsSnapshot,
    MetricsUnavailable,
    _connect,
    _snapshot,
)

if TYPE_CHECKING:
    import pandas as pd

    from ..server import Server


class MetricsRecorder:
    """Samples a server's /metrics every `interval` seconds on a background thread.

    `frame()` returns everything so far as a DataFrame: one row per sample and model, with the
    per-interval columns (DERIVED) computed from consecutive samples. `start()` returns after
    the first sample and `stop()` takes a last one, so the frame spans exactly the work done
    between the two calls (every request that finished in between is in its latencies,
    however busy the machine, however late the thread runs). A failed sample is
    skipped and kept in `last_error`; the recorder keeps trying, so it survives a server
    restart (its connection finds the server again and re-reads the key on a 401).
    """

    def __init__(self, target: Server | str, interval: float = 1.0, max_rows: int = 10_000,
                 timeout: float = QUICK_TIMEOUT_S, *, api_key: str | None = None) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self._conn = _connect(target, api_key)
        self.interval = float(interval)
        self._max_rows = max_rows
        self._timeout = timeout
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._started: float | None = None
        self.last_error: str | None = None
        self.samples_taken = 0

    @property
    def base_url(self) -> str:
        return self._conn.base_url

    @property
    def connection(self) -> Connection:
        """How samples reach the server (lab_helpers.connect)."""
        return self._conn

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sample(self) -> MetricsSnapshot | None:
        """Take one sample now and append it; None (and `last_error` set) if it failed."""
        try:
            snap = _snapshot(self._conn, self._timeout)
        except MetricsUnavailable as exc:
            self.last_error = exc.what
            return None
        self.last_error = None
        with self._lock:
            if self._started is None:
                self._started = snap.time
            for row in snap.rows():
                row["elapsed_s"] = snap.time - self._started
                self._rows.append(row)
            del self._rows[:-self._max_rows]
            self.samples_taken += 1
        return snap

    def start(self) -> MetricsRecorder:
        """Take the first sample now, then keep sampling on a background thread."""
        if self.running:
            return self
        self.sample()
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="vllm-lab-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and take a last sample (skipped when the last one failed)."""
        self._halt.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._timeout + self.interval + 1)
        was_running = thread is not None
        self._thread = None
        if was_running and self.last_error is None:
            self.sample()

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._started = None
            self.samples_taken = 0

    def _run(self) -> None:
        began = time.monotonic()  # start() has just taken the first sample
        while not self._halt.wait(max(0.0, self.interval - (time.monotonic() - began))):
            began = time.monotonic()
            self.sample()

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return derive(rows)

    def __enter__(self) -> MetricsRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<MetricsRecorder {self.base_url} every {self.interval:g} s, {state}, "
                f"{self.samples_taken} samples>")


def derive(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Raw sample rows (MetricsSnapshot.rows() plus elapsed_s) as a frame with DERIVED columns.

    Each derived value covers the interval since the model's previous sample. A restarted
    server resets its counters: the negative differences across the restart become NaN.
    """
    import numpy as np
    import pandas as pd

    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in DERIVED])
    df["time"] = pd.to_datetime(df["time"], unit="s")
    for column in DERIVED:
        df[column] = pd.Series(dtype=float)
    for _, group in df.groupby("model", sort=False):
        d = group.drop(columns=["time", "model"]).astype(float).diff()
        d = d.where(d >= 0)  # a counter that went down: the server restarted
        dt = d["elapsed_s"].where(d["elapsed_s"] > 0)
        idx = group.index
        df.loc[idx, "prompt_tokens_per_s"] = d["prompt_tokens_total"] / dt
        df.loc[idx, "generation_tokens_per_s"] = d["generation_tokens_total"] / dt
        df.loc[idx, "preemptions"] = d["preemptions_total"]
        queries = d["prefix_cache_queries_total"].replace(0, np.nan)
        df.loc[idx, "prefix_cache_hit_rate"] = d["prefix_cache_hits_total"] / queries
        for short, column in LATENCY_COLUMNS.items():
            count = d[f"{short}_count"].replace(0, np.nan)
            df.loc[idx, column] = d[f"{short}_sum_s"] / count
    return df[COLUMNS]


