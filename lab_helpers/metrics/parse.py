"""vLLM's Prometheus /metrics, read: the metric names the lab uses, and one parsed snapshot
per request, per model. Requests carry the server's API key (every route but /health needs it)
and go through `lab_helpers.connect`. Several engines (data parallel) are summed, their
KV-cache usage averaged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..connect import QUICK_TIMEOUT_S, Connection, ServerRequestError

if TYPE_CHECKING:

    from ..server import Server

# vLLM 0.32 names (checked against a live 0.32.0 server). Older releases called KV usage
# gpu_cache_*. Counters are listed without "_total": the samples carry it.
KV_CACHE_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
COUNTERS = {
    "vllm:prompt_tokens": "prompt_tokens_total",
    "vllm:generation_tokens": "generation_tokens_total",
    "vllm:num_preemptions": "preemptions_total",
    "vllm:prefix_cache_queries": "prefix_cache_queries_total",
    "vllm:prefix_cache_hits": "prefix_cache_hits_total",
}
HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": "ttft",
    "vllm:inter_token_latency_seconds": "itl",
    "vllm:e2e_request_latency_seconds": "e2e",
}
PROMPT_TOKENS = "vllm:prompt_tokens"
GENERATION_TOKENS = "vllm:generation_tokens"
TTFT = "vllm:time_to_first_token_seconds"

# Per-interval latencies: the histogram's Δsum/Δcount between two samples, i.e. the mean over
# the requests that finished that step in that interval (NaN when none did).
LATENCY_COLUMNS = {"ttft": "ttft_s", "itl": "itl_s", "e2e": "e2e_s"}

COLUMNS = [
    "time", "elapsed_s", "model", "kv_cache_usage_pct", "requests_running",
    "requests_waiting", "prompt_tokens_total", "generation_tokens_total",
    "preemptions_total", "prefix_cache_queries_total", "prefix_cache_hits_total",
    "ttft_count", "ttft_sum_s", "ttft_mean_s", "itl_count", "itl_sum_s",
    "e2e_count", "e2e_sum_s",
    # derived from consecutive samples by MetricsRecorder.frame():
    "prompt_tokens_per_s", "generation_tokens_per_s", "preemptions", "prefix_cache_hit_rate",
    "ttft_s", "itl_s", "e2e_s",
]
DERIVED = COLUMNS[COLUMNS.index("prompt_tokens_per_s"):]


MetricsUnavailable = ServerRequestError
"""/metrics could not be read: the connection layer's error (ServerUnavailable, KeyRejected or
RequestRejected), under the name this module has always raised."""
KEY_HINT = ("pass the server or its lab name (fetch_metrics(srv)), or "
            "fetch_metrics(url, api_key=srv.api_key)")
"""The fix when a key given by hand is refused."""


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative bucket counts by upper bound, sum and count."""

    buckets: tuple[tuple[float, float], ...]
    sum: float
    count: float

    @property
    def mean(self) -> float | None:
        """Mean since the server started (not of recent requests: see the recorder)."""
        return self.sum / self.count if self.count else None

    def __add__(self, other: Histogram) -> Histogram:
        counts = dict(self.buckets)
        for le, n in other.buckets:
            counts[le] = counts.get(le, 0.0) + n
        return Histogram(tuple(sorted(counts.items())), self.sum + other.sum,
                         self.count + other.count)


@dataclass(frozen=True)
class ModelMetrics:
    """One served model's numbers at one moment (counters and histograms since its start)."""

    model: str
    kv_cache_usage: float | None
    """Fraction 0-1 of the KV cache in use."""
    requests_running: float = 0.0
    requests_waiting: float = 0.0
    prompt_tokens_total: float = 0.0
    generation_tokens_total: float = 0.0
    preemptions_total: float = 0.0
    """Requests pushed out of the KV cache to make room (recomputed later): a full cache."""
    prefix_cache_queries_total: float = 0.0
    """Prompt tokens looked up in the prefix cache."""
    prefix_cache_hits_total: float = 0.0
    """Of those, tokens whose KV was already cached (not computed again)."""
    ttft: Histogram | None = None
    """Time to first token (server side), seconds."""
    itl: Histogram | None = None
    """Inter-token latency: the gap between consecutive output tokens, seconds."""
    e2e: Histogram | None = None
    """End-to-end request latency (arrival to last token, server side), seconds."""

    @property
    def kv_cache_usage_pct(self) -> float | None:
        return None if self.kv_cache_usage is None else 100.0 * self.kv_cache_usage

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        """Hits over queries since the server started (0-1); None before any query."""
        if not self.prefix_cache_queries_total:
            return None
        return self.prefix_cache_hits_total / self.prefix_cache_queries_total


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
            row: dict[str, Any] = {
                "time": self.time, "model": m.model,
                "kv_cache_usage_pct": m.kv_cache_usage_pct,
                "requests_running": m.requests_running,
                "requests_waiting": m.requests_waiting,
            }
            for column in COUNTERS.values():
                row[column] = getattr(m, column)
            for short in HISTOGRAMS.values():
                hist: Histogram | None = getattr(m, short)
                row[f"{short}_count"] = hist.count if hist else 0.0
                row[f"{short}_sum_s"] = hist.sum if hist else 0.0
            row["ttft_mean_s"] = m.ttft.mean if m.ttft else None
            out.append(row)
        return out


# -- parsing -----------------------------------------------------------------------------------


class _Hist:
    def __init__(self) -> None:
        self.buckets: dict[float, float] = {}
        self.sum = 0.0
        self.count = 0.0

    def freeze(self) -> Histogram:
        return Histogram(tuple(sorted(self.buckets.items())), self.sum, self.count)


class _Acc:
    """Values of one model while parsing, summed over engines."""

    def __init__(self) -> None:
        self.kv: list[float] = []
        self.running = 0.0
        self.waiting = 0.0
        self.counters = dict.fromkeys(COUNTERS.values(), 0.0)
        self.hists: dict[str, _Hist] = {}

    def metrics(self, model: str) -> ModelMetrics:
        return ModelMetrics(
            model=model,
            kv_cache_usage=sum(self.kv) / len(self.kv) if self.kv else None,
            requests_running=self.running, requests_waiting=self.waiting,
            **self.counters,  # type: ignore[arg-type]
            **{short: h.freeze() for short, h in self.hists.items()},
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
            elif sname.endswith("_total") and sname[:-6] in COUNTERS:
                acc(labels).counters[COUNTERS[sname[:-6]]] += value
            else:
                base, _, part = sname.rpartition("_")
                short = HISTOGRAMS.get(base)
                if short is None or part not in ("bucket", "sum", "count"):
                    continue
                hist = acc(labels).hists.setdefault(short, _Hist())
                if part == "bucket":
                    le = float(labels["le"])
                    hist.buckets[le] = hist.buckets.get(le, 0.0) + value
                elif part == "sum":
                    hist.sum += value
                else:
                    hist.count += value
    return {model: a.metrics(model) for model, a in per_model.items() if model}


def _connect(target: Server | str, api_key: str | None) -> Connection:
    """The connection to `target`: a lab server's (key file), or a bare URL with `api_key`."""
    return Connection.of(target, api_key=api_key, key_hint=KEY_HINT)


def _snapshot(conn: Connection, timeout: float) -> MetricsSnapshot:
    text = conn.get("/metrics", timeout=timeout).text
    return MetricsSnapshot(time=time.time(), base_url=conn.base_url, models=parse_metrics(text))


def fetch_metrics(target: Server | str, timeout: float = QUICK_TIMEOUT_S, *,
                  api_key: str | None = None) -> MetricsSnapshot:
    """GET /metrics of a server (a Server, a lab server name or a base URL) and parse it.

    The request carries the server's API key: a Server's or a lab server's own, or `api_key`
    for a bare URL.
    """
    return _snapshot(_connect(target, api_key), timeout)
