"""plot_metrics: six panels of a recorded server over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .parse import LATENCY_COLUMNS
from .recorder import MetricsRecorder

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def plot_metrics(data: pd.DataFrame | MetricsRecorder, fig: Figure | None = None) -> Figure:
    """Six panels over time: KV cache, requests, tokens/s, latency, prefix hits, preemptions.

    Latencies are per interval (Δsum/Δcount of vLLM's histograms), points only where requests
    finished. Draws on `fig` if given (cleared first), else on a new Figure (not pyplot's
    global state, so it is safe from a background thread). In a notebook it displays itself.
    """
    from matplotlib.figure import Figure

    df = data.frame() if isinstance(data, MetricsRecorder) else data
    if fig is None:
        fig = Figure(figsize=(9, 7.5), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(3, 2, sharex=True)
    panels = [
        (axes[0][0], "KV-cache usage (%)", {"kv_cache_usage_pct": "KV cache"}),
        (axes[0][1], "Requests", {"requests_running": "running",
                                  "requests_waiting": "waiting"}),
        (axes[1][0], "Tokens/s", {"prompt_tokens_per_s": "prompt",
                                  "generation_tokens_per_s": "generated"}),
        (axes[1][1], "Mean latency per interval (s)", {"ttft_s": "TTFT", "itl_s": "inter-token",
                                                       "e2e_s": "end-to-end"}),
        (axes[2][0], "Prefix-cache hit rate per interval", {"prefix_cache_hit_rate": "hits"}),
        (axes[2][1], "Preemptions per interval", {"preemptions": "preemptions"}),
    ]
    models = list(df["model"].unique()) if len(df) else []
    for ax, title, columns in panels:
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        for model in models:
            part = df[df["model"] == model]
            for column, name in columns.items():
                label = name if len(models) == 1 else f"{model}: {name}"
                ax.plot(part["elapsed_s"], part[column].astype(float), label=label,
                        marker="." if column in LATENCY_COLUMNS.values() else None)
        if models and (len(columns) > 1 or len(models) > 1):
            ax.legend(fontsize=8, loc="upper left")
    for ax in axes[2]:
        ax.set_xlabel("seconds")
    if not models:
        fig.suptitle("no samples yet", fontsize=10)
    return fig
