"""What the server says about itself: vLLM's Prometheus /metrics, sampled and plotted.

    from lab_helpers.metrics import fetch_metrics, MetricsRecorder, plot_metrics

    snap = fetch_metrics(srv)                   # a Server, a lab server name, or a URL + api_key
    snap.model().kv_cache_usage_pct             # one model per server in the lab
    with MetricsRecorder(srv, interval=1.0) as rec:
        ...                                     # chat meanwhile
    plot_metrics(rec.frame())

Counters and histograms only grow while the server runs, so the recorder derives everything
"per interval" from consecutive samples: tokens/s, preemptions, the prefix-cache hit rate, and
mean TTFT, inter-token and end-to-end latency as Δsum/Δcount of vLLM's histograms (the mean
over the requests of that interval, not since the server started). Nothing is estimated.

- `parse`: metric names, snapshots, `fetch_metrics`;
- `recorder`: `MetricsRecorder` (a sampling thread) and `derive` (the per-interval columns);
- `plots`: `plot_metrics`;
- `capacity`: how many tokens (and full-length requests) the KV cache holds, from
  `vllm:cache_config_info`.

May import: `connect`, `errors` (and pandas/matplotlib when a table or plot is asked for).
"""

from __future__ import annotations

from .parse import (
    COLUMNS,
    DERIVED,
    KV_CACHE_USAGE,
    Histogram,
    MetricsSnapshot,
    MetricsUnavailable,
    ModelMetrics,
    fetch_metrics,
    parse_metrics,
)
from .plots import plot_metrics
from .recorder import MetricsRecorder, derive

__all__ = ["COLUMNS", "DERIVED", "KV_CACHE_USAGE", "Histogram", "MetricsRecorder",
           "MetricsSnapshot", "MetricsUnavailable", "ModelMetrics", "derive", "fetch_metrics",
           "parse_metrics", "plot_metrics"]
