"""GuideLLM's report as a tidy table: one row per benchmark (load level), nothing re-computed.

Every number is read from GuideLLM's own `GenerativeBenchmark.metrics` distributions:
throughput is the mean over the run of all requests (`total`, as GuideLLM's console shows it),
latencies are the percentiles GuideLLM computed over the *successful* requests. The units are
GuideLLM's: TTFT and inter-token latency in milliseconds, end-to-end latency in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from guidellm.benchmark.schemas import GenerativeBenchmark, GenerativeBenchmarksReport

PERCENTILES = ("p50", "p95", "p99")
# column prefix -> (GuideLLM metric attribute, unit suffix)
LATENCIES = {
    "ttft": ("time_to_first_token_ms", "ms"),
    "itl": ("inter_token_latency_ms", "ms"),
    "latency": ("request_latency", "s"),
}
COLUMNS = [
    "run", "benchmark", "strategy", "load", "requests_ok", "requests_errored",
    "requests_incomplete", "error_rate", "duration_s", "concurrency_mean", "requests_per_s",
    "output_tokens_per_s", "total_tokens_per_s",
    *[f"{prefix}_{p}_{unit}" for prefix, (_, unit) in LATENCIES.items() for p in PERCENTILES],
]


def load_report(path: str | Path) -> GenerativeBenchmarksReport:
    """A report GuideLLM saved (benchmarks.json), as GuideLLM's own object."""
    from guidellm.benchmark.schemas import GenerativeBenchmarksReport

    return GenerativeBenchmarksReport.load_file(Path(path))


def load_level(benchmark: GenerativeBenchmark) -> float:
    """The load a benchmark was run at: streams, requests/s, or 1 for synchronous.

    A throughput level (all requests at once) has no set load: it gets its measured mean
    concurrency, so it still sorts on the load axis.
    """
    strategy = benchmark.config.strategy
    streams = getattr(strategy, "streams", None)
    if streams is not None:
        return float(streams)
    rate = getattr(strategy, "rate", None)
    if rate is not None:
        return float(rate)
    if strategy.type_ == "synchronous":
        return 1.0
    return float(benchmark.metrics.request_concurrency.total.mean)


def benchmark_row(benchmark: GenerativeBenchmark, run: str = "") -> dict[str, Any]:
    m = benchmark.metrics
    totals = m.request_totals
    done = (totals.successful or 0) + (totals.errored or 0)
    row: dict[str, Any] = {
        "run": run,
        "benchmark": str(benchmark.config.strategy),
        "strategy": benchmark.config.strategy.type_,
        "load": load_level(benchmark),
        "requests_ok": int(totals.successful or 0),
        "requests_errored": int(totals.errored or 0),
        "requests_incomplete": int(totals.incomplete or 0),
        "error_rate": (totals.errored or 0) / done if done else 0.0,
        "duration_s": float(benchmark.duration),
        "concurrency_mean": float(m.request_concurrency.total.mean),
        "requests_per_s": float(m.requests_per_second.total.mean),
        "output_tokens_per_s": float(m.output_tokens_per_second.total.mean),
        "total_tokens_per_s": float(m.tokens_per_second.total.mean),
    }
    for prefix, (attr, unit) in LATENCIES.items():
        dist = getattr(m, attr).successful
        for p in PERCENTILES:
            row[f"{prefix}_{p}_{unit}"] = (float(getattr(dist.percentiles, p))
                                           if dist is not None and dist.count else float("nan"))
    return row


def report_frame(report: GenerativeBenchmarksReport, label: str = "") -> pd.DataFrame:
    """One row per benchmark of the report, in the order GuideLLM ran them."""
    import pandas as pd

    if not label:
        label = report.config.metadata.labels.get("run", "")
    return pd.DataFrame([benchmark_row(b, label) for b in report.benchmarks], columns=COLUMNS)


def distributions(report: GenerativeBenchmarksReport, metric: str = "time_to_first_token_ms"
                  ) -> pd.DataFrame:
    """Per-request values GuideLLM kept for each benchmark (for histograms).

    metric: a `GenerativeRequestStats` property such as time_to_first_token_ms,
    inter_token_latency_ms or request_latency. Only successful requests.
    """
    import pandas as pd

    rows = []
    for benchmark in report.benchmarks:
        for req in benchmark.requests.successful or []:
            value = getattr(req, metric, None)
            if value is not None:
                rows.append({"benchmark": str(benchmark.config.strategy),
                             "load": load_level(benchmark), metric: float(value)})
    return pd.DataFrame(rows, columns=["benchmark", "load", metric])


def level_times(report: GenerativeBenchmarksReport) -> list[tuple[str, float, float]]:
    """(benchmark, start, end) in Unix seconds for each level, as GuideLLM measured them."""
    return [(str(b.config.strategy), float(b.start_time), float(b.end_time))
            for b in report.benchmarks]


def combine(*frames: pd.DataFrame) -> pd.DataFrame:
    """Several runs' tables in one (for overlaid plots and comparison tables)."""
    import pandas as pd

    return pd.concat([f for f in frames if len(f)], ignore_index=True)
