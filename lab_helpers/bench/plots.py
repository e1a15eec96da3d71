"""Charts of benchmark tables: every function takes the tidy frame (one or several runs,
overlaid by their `run` column) and returns a matplotlib Figure (it displays itself in a
notebook). Figures are built without pyplot's global state, like `metrics.plot_metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .slo import ACME, SLO

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _show_as_png_in_ipython() -> None:
    """A bare Figure (no pyplot) shows as text in a kernel until its PNG formatter is set;
    this sets it (what pyplot's inline backend would do), so a returned chart renders."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def _figure(width: float = 10, height: float = 4) -> Figure:
    from matplotlib.figure import Figure

    _show_as_png_in_ipython()
    return Figure(figsize=(width, height), layout="constrained")


def _runs(frame: pd.DataFrame):
    for run, part in frame.groupby("run", sort=False):
        yield str(run), part.sort_values("load")


def _load_axis(ax: Axes, frame: pd.DataFrame) -> None:
    loads = sorted(frame["load"].unique())
    if loads and max(loads) / max(min(loads), 1e-9) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(loads, [f"{x:g}" for x in loads])
    ax.set_xlabel("load (concurrent streams or requests/s)")
    ax.grid(alpha=0.3)


def plot_throughput(frame: pd.DataFrame) -> Figure:
    """Output tokens/s and requests/s against the load, one line per run."""
    fig = _figure()
    tok, req = fig.subplots(1, 2)
    for run, part in _runs(frame):
        tok.plot(part["load"], part["output_tokens_per_s"], marker="o", label=run)
        req.plot(part["load"], part["requests_per_s"], marker="o", label=run)
    tok.set_title("Output tokens/s")
    req.set_title("Requests/s")
    for ax in (tok, req):
        _load_axis(ax, frame)
        ax.legend(fontsize=8)
    return fig


def plot_latency(frame: pd.DataFrame, slo: SLO | None = ACME) -> Figure:
    """TTFT and end-to-end latency at p50/p95/p99 against the load, with the SLO lines."""
    fig = _figure(11, 4)
    ttft, e2e = fig.subplots(1, 2)
    styles = {"p50": ":", "p95": "-", "p99": "--"}
    for i, (run, part) in enumerate(_runs(frame)):
        color = f"C{i}"
        for p, style in styles.items():
            ttft.plot(part["load"], part[f"ttft_{p}_ms"], style, marker="o", color=color,
                      label=f"{run} {p}")
            e2e.plot(part["load"], part[f"latency_{p}_s"], style, marker="o", color=color,
                     label=f"{run} {p}")
    if slo is not None:
        ttft.axhline(slo.ttft_p95_ms, color="red", lw=1, label=f"target p95 < {slo.ttft_p95_ms:g}")
        e2e.axhline(slo.latency_p95_s, color="red", lw=1,
                    label=f"target p95 < {slo.latency_p95_s:g}")
    ttft.set_title("Time to first token (ms)")
    e2e.set_title("End-to-end latency (s)")
    for ax in (ttft, e2e):
        _load_axis(ax, frame)
        ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)
    return fig


def plot_latency_throughput(frame: pd.DataFrame, slo: SLO | None = ACME) -> Figure:
    """The latency-throughput curve: p95 end-to-end latency against requests/s, each point
    labelled with its load. Up and to the right is where a server saturates."""
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    for run, part in _runs(frame):
        ax.plot(part["requests_per_s"], part["latency_p95_s"], marker="o", label=run)
        for _, row in part.iterrows():
            ax.annotate(f"{row['load']:g}", (row["requests_per_s"], row["latency_p95_s"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    if slo is not None:
        ax.axhline(slo.latency_p95_s, color="red", lw=1, label="p95 latency target")
        ax.axvline(slo.min_requests_per_s, color="red", lw=1, ls="--",
                   label="throughput target")
    ax.set_xlabel("requests/s")
    ax.set_ylabel("p95 end-to-end latency (s)")
    ax.set_title("Latency vs throughput (points labelled with their load)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_distributions(ttft: pd.DataFrame, itl: pd.DataFrame) -> Figure:
    """Histograms of per-request TTFT and inter-token latency, one colour per benchmark
    (frames from `bench.distributions(report, ...)`)."""
    fig = _figure()
    left, right = fig.subplots(1, 2)
    for ax, data, column, title in ((left, ttft, "time_to_first_token_ms", "TTFT (ms)"),
                                    (right, itl, "inter_token_latency_ms",
                                     "Inter-token latency (ms)")):
        for name, part in data.groupby("benchmark", sort=False):
            ax.hist(part[column], bins=20, alpha=0.5, label=str(name))
        ax.set_title(title)
        ax.set_ylabel("requests")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_with_metrics(metrics: pd.DataFrame, starts: list[tuple[str, float, float]]) -> Figure:
    """The server's own view during a run (/metrics: KV cache, running and waiting requests,
    a `MetricsRecorder.frame()`) with each benchmark level shaded; `starts` holds
    (benchmark, start, end) Unix times (`bench.level_times(report)`)."""
    import pandas as pd

    fig = _figure(11, 4.5)
    kv, reqs = fig.subplots(1, 2, sharex=True)
    t0 = pd.Timestamp(min(s for _, s, _ in starts), unit="s") if starts else None
    x = ((metrics["time"] - t0).dt.total_seconds() if t0 is not None
         else metrics["elapsed_s"])
    kv.plot(x, metrics["kv_cache_usage_pct"], color="C0")
    kv.set_title("KV-cache usage (%)")
    reqs.plot(x, metrics["requests_running"], label="running", color="C1")
    reqs.plot(x, metrics["requests_waiting"], label="waiting", color="C3")
    reqs.set_title("Requests in the server")
    reqs.legend(fontsize=8)
    for ax in (kv, reqs):
        for i, (name, start, end) in enumerate(starts):
            if t0 is None:
                continue
            a, b = start - t0.timestamp(), end - t0.timestamp()
            ax.axvspan(a, b, alpha=0.08, color=f"C{i % 10}")
            ax.text(a, 1.0, name, transform=ax.get_xaxis_transform(), fontsize=7,
                    va="top", rotation=90)
        ax.set_xlabel("seconds since the first level started")
        ax.grid(alpha=0.3)
    return fig


def plot_comparison(table: pd.DataFrame, noise: float | None = None,
                    baseline: str | None = None) -> Figure:
    """Output tokens/s of each run in a `comparison_table`, one bar per run, with the band
    baseline x (1 ± noise) shaded: a bar inside the band differs from the baseline by no more
    than two fresh servers of the same config did."""
    fig = _figure(8, 0.6 * len(table) + 1.6)
    ax = fig.subplots()
    labels = [str(label) for label in table.index]
    values = table["output_tokens_per_s"]
    base = baseline or labels[0]
    ax.barh(labels, values, color=["C0" if label == base else "C1" for label in labels])
    if "throughput_vs_baseline" in table:
        for y, ratio in enumerate(table["throughput_vs_baseline"]):
            ax.annotate(f"x{ratio:.2f}", (values.iloc[y], y), textcoords="offset points",
                        xytext=(4, 0), va="center", fontsize=8)
    if noise is not None and base in table.index:
        ref = table.loc[base, "output_tokens_per_s"]
        ax.axvspan(ref * (1 - noise), ref * (1 + noise), color="grey", alpha=0.2,
                   label=f"{base} ± the noise ({noise:.0%})")
        ax.legend(fontsize=8, loc="lower right")
    ax.invert_yaxis()  # the first run on top
    ax.set_xlabel("output tokens/s")
    ax.set_title("Each run at the same load (ratio to the baseline beside each bar)")
    ax.grid(alpha=0.3, axis="x")
    return fig
