"""What the server says about itself: vLLM's Prometheus /metrics, sampled and plotted.

    from lab_helpers.metrics import fetch_metrics, MetricsRecorder, plot_metrics

    snap = fetch_metrics(srv)                   # a Server, a lab server name or a base URL
    snap.model().kv_cache_usage_pct             # one model per server in the lab
    with MetricsRecorder(srv, interval=1.0) as rec:
        ...                                     # chat meanwhile
    plot_metrics(rec.frame())

/metrics needs no API key. Counters (tokens) only grow while the server runs; the recorder
derives rates (tokens/s) from consecutive samples. Several engines (data parallel) are summed,
their KV-cache usage averaged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from .errors import LabError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .server import Server

# vLLM 0.32 names (checked against a live server). Older releases called KV usage gpu_cache_*.
KV_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
PROMPT_TOKENS = "vllm:prompt_tokens"  # counter: samples are named ..._total
GENERATION_TOKENS = "vllm:generation_tokens"
TTFT = "vllm:time_to_first_token_seconds"

COLUMNS = [
    "time", "elapsed_s", "model", "kv_cache_usage_pct", "requests_running",
    "requests_waiting", "prompt_tokens_total", "generation_tokens_total",
    "generation_tokens_per_s", "ttft_count", "ttft_sum_s", "ttft_mean_s",
]


class MetricsUnavailable(LabError):
    """/metrics could not be read."""


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative bucket counts by upper bound, sum and count."""

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def __add__(self, other: Histogram) -> Histogram:
        counts = dict(self.buckets)
        for le, n in other.buckets:
            counts[le] = counts.get(le, 0.0) + n
        return Histogram(tuple(sorted(counts.items())), self.sum + other.sum,
                         self.count + other.count)


@dataclass(frozen=True)
class ModelMetrics:
    """One served model's numbers at one moment."""

    model: str
    kv_cache_usage: float | None
    """Fraction 0-1 of the KV cache in use."""
    requests_running: float = 0.0
    requests_waiting: float = 0.0
    prompt_tokens_total: float = 0.0
    generation_tokens_total: float = 0.0
    ttft: Histogram | None = None
    """Time to first token (server side), seconds."""

    @property
    def kv_cache_usage_pct(self) -> float | None:
        return None if self.kv_cache_usage is None else 100.0 * self.kv_cache_usage


@dataclass(frozen=True)
class MetricsSnapshot:
    """All models of one server at one moment (`time` is Unix seconds)."""

    time: float
    base_url: str
    models: dict[str, ModelMetrics] = field(default_factory=dict)

    def model(self, name: str | None = None) -> ModelMetrics:
        """The metrics of `name`, or of the only model when None."""
        if name is None:
            if len(self.models) != 1:
                raise KeyError(f"{len(self.models)} models in the snapshot: pick one of "
                               f"{sorted(self.models)}")
            return next(iter(self.models.values()))
        if name not in self.models:
            raise KeyError(f"No metrics for model {name!r}; there are {sorted(self.models)}")
        return self.models[name]

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per model (the recorder's DataFrame columns, without derived ones)."""
        out = []
        for m in self.models.values():
            out.append({
                "time": self.time, "model": m.model,
                "kv_cache_usage_pct": m.kv_cache_usage_pct,
                "requests_running": m.requests_running,
                "requests_waiting": m.requests_waiting,
                "prompt_tokens_total": m.prompt_tokens_total,
                "generation_tokens_total": m.generation_tokens_total,
                "ttft_count": m.ttft.count if m.ttft else 0.0,
                "ttft_sum_s": m.ttft.sum if m.ttft else 0.0,
                "ttft_mean_s": m.ttft.mean if m.ttft else None,
            })
        return out


# -- parsing -----------------------------------------------------------------------------------


class _Acc:
    """Values of one model while parsing, summed over engines."""

    def __init__(self) -> None:
        self.kv: list[float] = []
        self.running = 0.0
        self.waiting = 0.0
        self.prompt = 0.0
        self.generation = 0.0
        self.ttft_buckets: dict[float, float] = {}
        self.ttft_sum = 0.0
        self.ttft_count = 0.0
        self.has_ttft = False

    def metrics(self, model: str) -> ModelMetrics:
        ttft = None
        if self.has_ttft:
            ttft = Histogram(tuple(sorted(self.ttft_buckets.items())), self.ttft_sum,
                             self.ttft_count)
        return ModelMetrics(
            model=model,
            kv_cache_usage=sum(self.kv) / len(self.kv) if self.kv else None,
            requests_running=self.running, requests_waiting=self.waiting,
            prompt_tokens_total=self.prompt, generation_tokens_total=self.generation,
            ttft=ttft,
        )


def parse_metrics(text: str) -> dict[str, ModelMetrics]:
    """The lab's metrics per model name from Prometheus text exposition format."""
    from prometheus_client.parser import text_string_to_metric_families

    per_model: dict[str, _Acc] = {}

    def acc(labels: dict[str, str]) -> _Acc:
        return per_model.setdefault(labels.get("model_name", ""), _Acc())

    # Dispatch on sample names: the parser names counter families with or without "_total"
    # depending on how the TYPE line spells them.
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sname, labels, value = sample.name, sample.labels, float(sample.value)
            if not sname.startswith("vllm:"):
                continue
            if sname in KV_CACHE_USAGE:
                acc(labels).kv.append(value)
            elif sname == RUNNING:
                acc(labels).running += value
            elif sname == WAITING:
                acc(labels).waiting += value
            elif sname == PROMPT_TOKENS + "_total":
                acc(labels).prompt += value
            elif sname == GENERATION_TOKENS + "_total":
                acc(labels).generation += value
            elif sname == TTFT + "_bucket":
                a = acc(labels)
                a.has_ttft = True
                le = float(labels["le"])
                a.ttft_buckets[le] = a.ttft_buckets.get(le, 0.0) + value
            elif sname == TTFT + "_sum":
                acc(labels).ttft_sum += value
                acc(labels).has_ttft = True
            elif sname == TTFT + "_count":
                acc(labels).ttft_count += value
                acc(labels).has_ttft = True
    return {model: a.metrics(model) for model, a in per_model.items() if model}


def _base_url(target: Server | str) -> str:
    if not isinstance(target, str):
        return target.base_url
    if target.startswith(("http://", "https://")):
        return target.rstrip("/").removesuffix("/v1")
    from . import server

    return server.get(target).base_url


def fetch_metrics(target: Server | str, timeout: float = 5.0) -> MetricsSnapshot:
    """GET /metrics of a server (a Server, a lab server name or a base URL) and parse it."""
    base_url = _base_url(target)
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise MetricsUnavailable(
            f"Cannot read {base_url}/metrics: {type(exc).__name__}: {exc}",
            cause="the server is stopped, still starting, or not a vLLM server",
            fix="check it with `vllm-lab status`; start it with `vllm-lab up`",
        ) from exc
    return MetricsSnapshot(time=time.time(), base_url=base_url,
                           models=parse_metrics(response.text))


# -- recording ---------------------------------------------------------------------------------


class MetricsRecorder:
    """Samples a server's /metrics every `interval` seconds on a background thread.

    `frame()` returns everything so far as a DataFrame (one row per sample and model, with
    `generation_tokens_per_s` derived from consecutive samples). A failed sample is skipped and
    kept in `last_error`; the recorder keeps trying, so it survives a server restart.
    """

    def __init__(self, target: Server | str, interval: float = 1.0, max_rows: int = 10_000,
                 timeout: float = 5.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self._base_url = _base_url(target)
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
        return self._base_url

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sample(self) -> MetricsSnapshot | None:
        """Take one sample now and append it; None (and `last_error` set) if it failed."""
        try:
            snap = fetch_metrics(self._base_url, timeout=self._timeout)
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
        if self.running:
            return self
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="vllm-lab-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._timeout + self.interval + 1)
        self._thread = None

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._started = None
            self.samples_taken = 0

    def _run(self) -> None:
        while not self._halt.is_set():
            began = time.monotonic()
            self.sample()
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        with self._lock:
            rows = list(self._rows)
        df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "generation_tokens_per_s"])
        df["time"] = pd.to_datetime(df["time"], unit="s")
        rates = []
        for _, group in df.groupby("model", sort=False):
            dt = group["elapsed_s"].diff()
            rate = group["generation_tokens_total"].diff() / dt
            rates.append(rate.clip(lower=0))  # a restarted server resets its counters
        df["generation_tokens_per_s"] = pd.concat(rates) if rates else pd.Series(dtype=float)
        return df[COLUMNS]

    def __enter__(self) -> MetricsRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<MetricsRecorder {self._base_url} every {self.interval:g} s, {state}, "
                f"{self.samples_taken} samples>")


# -- plotting ----------------------------------------------------------------------------------


def plot_metrics(data: pd.DataFrame | MetricsRecorder, fig: Figure | None = None) -> Figure:
    """Four panels over time: KV-cache usage, requests, generated tokens/s, mean TTFT.

    Draws on `fig` if given (cleared first), else on a new Figure (not pyplot's global state,
    so it is safe from a background thread). In a notebook, the figure displays itself.
    """
    from matplotlib.figure import Figure

    df = data.frame() if isinstance(data, MetricsRecorder) else data
    if fig is None:
        fig = Figure(figsize=(9, 5.5), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(2, 2, sharex=True)
    panels = [
        (axes[0][0], "KV-cache usage (%)", ["kv_cache_usage_pct"]),
        (axes[0][1], "Requests", ["requests_running", "requests_waiting"]),
        (axes[1][0], "Generated tokens/s", ["generation_tokens_per_s"]),
        (axes[1][1], "Mean TTFT, server side (s)", ["ttft_mean_s"]),
    ]
    models = list(df["model"].unique()) if len(df) else []
    for ax, title, columns in panels:
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        for model in models:
            part = df[df["model"] == model]
            for column in columns:
                label = column.replace("requests_", "") if len(columns) > 1 else model
                if len(models) > 1 and len(columns) > 1:
                    label = f"{model}: {label}"
                ax.plot(part["elapsed_s"], part[column].astype(float), label=label)
        if models and (len(columns) > 1 or len(models) > 1):
            ax.legend(fontsize=8, loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("seconds")
    if not models:
        fig.suptitle("no samples yet", fontsize=10)
    return fig
