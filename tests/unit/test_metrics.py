"""The /metrics parser and the per-interval numbers, on text a real vLLM 0.32.0 server produced.

tests/data/README.md says which server produced the two captures. Expected values are read
from the raw text with a regex, independently of the parser under test.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from lab_helpers.metrics import (
    COLUMNS,
    DERIVED,
    MetricsSnapshot,
    derive,
    parse_metrics,
    plot_metrics,
)

DATA = Path(__file__).resolve().parent.parent / "data"
BEFORE = (DATA / "vllm-0.32.0-metrics-before.txt").read_text()
AFTER = (DATA / "vllm-0.32.0-metrics-after.txt").read_text()
MODEL = "smollm2-135m-instruct"


def raw(text: str, name: str) -> float:
    """The value of an unlabelled-by-le sample of the captured model, straight from the text."""
    match = re.search(rf'^{re.escape(name)}\{{engine="0",model_name="{MODEL}"\}} (\S+)$', text,
                      re.MULTILINE)
    assert match, name
    return float(match.group(1))


def rows_of(*texts_and_times: tuple[str, float]) -> list[dict]:
    rows = []
    for text, t in texts_and_times:
        for row in MetricsSnapshot(time=1_700_000_000 + t, base_url="x",
                                   models=parse_metrics(text)).rows():
            row["elapsed_s"] = t
            rows.append(row)
    return rows


def test_real_metrics_parse_into_every_lab_number():
    m = parse_metrics(AFTER)[MODEL]
    assert m.prompt_tokens_total == raw(AFTER, "vllm:prompt_tokens_total")
    assert m.generation_tokens_total == raw(AFTER, "vllm:generation_tokens_total")
    assert m.preemptions_total == raw(AFTER, "vllm:num_preemptions_total")
    assert m.prefix_cache_queries_total == raw(AFTER, "vllm:prefix_cache_queries_total")
    assert m.prefix_cache_hits_total == raw(AFTER, "vllm:prefix_cache_hits_total")
    for hist, name in ((m.ttft, "vllm:time_to_first_token_seconds"),
                       (m.itl, "vllm:inter_token_latency_seconds"),
                       (m.e2e, "vllm:e2e_request_latency_seconds")):
        assert hist is not None
        assert hist.count == raw(AFTER, f"{name}_count") > 0
        assert hist.sum == pytest.approx(raw(AFTER, f"{name}_sum"))
        assert hist.buckets[-1] == (math.inf, hist.count)
    assert 0 < m.prefix_cache_hit_rate <= 1
    assert m.kv_cache_usage is not None


def test_per_interval_numbers_are_differences_of_the_real_counters():
    df = derive(rows_of((BEFORE, 0.0), (AFTER, 2.0)))
    assert list(df.columns) == COLUMNS
    first, second = df.iloc[0], df.iloc[1]
    assert all(math.isnan(first[c]) for c in DERIVED)  # nothing to difference yet
    d = {name: raw(AFTER, name) - raw(BEFORE, name) for name in (
        "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
        "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
        "vllm:time_to_first_token_seconds_sum", "vllm:time_to_first_token_seconds_count",
        "vllm:e2e_request_latency_seconds_sum", "vllm:e2e_request_latency_seconds_count",
        "vllm:inter_token_latency_seconds_sum", "vllm:inter_token_latency_seconds_count")}
    assert second["prompt_tokens_per_s"] == pytest.approx(d["vllm:prompt_tokens_total"] / 2)
    assert second["generation_tokens_per_s"] == pytest.approx(
        d["vllm:generation_tokens_total"] / 2)
    assert second["prefix_cache_hit_rate"] == pytest.approx(
        d["vllm:prefix_cache_hits_total"] / d["vllm:prefix_cache_queries_total"])
    assert second["prefix_cache_hit_rate"] > 0  # the capture repeated a long system prompt
    for short, name in (("ttft", "time_to_first_token_seconds"),
                        ("e2e", "e2e_request_latency_seconds"),
                        ("itl", "inter_token_latency_seconds")):
        assert second[f"{short}_s"] == pytest.approx(
            d[f"vllm:{name}_sum"] / d[f"vllm:{name}_count"])
    assert second["preemptions"] == 0


def test_ttft_plotted_per_interval_not_since_start():
    """Issue 6: the view plotted the mean since start. Slow requests then fast ones must show
    the fast interval as fast, while the since-start mean stays high."""
    slow = AFTER  # real text; then two synthetic later states of the same histogram
    m = parse_metrics(slow)[MODEL]
    base = {"ttft_sum_s": m.ttft.sum, "ttft_count": m.ttft.count}
    rows = rows_of((slow, 0.0), (slow, 1.0), (slow, 2.0))
    rows[1].update(ttft_sum_s=base["ttft_sum_s"] + 10 * 2.0, ttft_count=base["ttft_count"] + 10)
    rows[2].update(ttft_sum_s=rows[1]["ttft_sum_s"] + 10 * 0.05,
                   ttft_count=rows[1]["ttft_count"] + 10)
    df = derive(rows)
    assert df["ttft_s"].iloc[1] == pytest.approx(2.0)
    assert df["ttft_s"].iloc[2] == pytest.approx(0.05)
    since_start = rows[2]["ttft_sum_s"] / rows[2]["ttft_count"]
    assert since_start > 0.1  # what the old view drew for the fast interval


def test_a_restart_resets_counters_to_nan_not_negative_rates():
    rows = rows_of((AFTER, 0.0), (BEFORE, 1.0))
    rows[1]["generation_tokens_total"] = 0.0
    df = derive(rows)
    assert math.isnan(df["generation_tokens_per_s"].iloc[1])


def test_plot_has_six_panels_with_the_new_series():
    fig = plot_metrics(derive(rows_of((BEFORE, 0.0), (AFTER, 1.0))))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 6
    assert any("Prefix-cache" in t for t in titles) and any("Preemptions" in t for t in titles)
    labels = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
    assert {"TTFT", "inter-token", "end-to-end", "prompt", "generated"} <= labels
