"""GuideLLM through lab_helpers.bench against the test lab's real chat server.

Tiny limits keep this cheap: the tests reuse the shared chat server (no server of their own)
and send a few dozen short requests, plus one 15 s load test at concurrency 32.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lab_helpers import bench
from lab_helpers.metrics import MetricsRecorder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def target(chat_srv):
    return bench.Target.from_server(chat_srv, label="chat")


@pytest.fixture(scope="module")
def small_run(target, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    load = bench.concurrent([1, 2], max_requests=4, prompt_tokens=32, output_tokens=16)
    return bench.run_benchmark(target, load, out_dir=out, progress=False)


def test_frame_matches_the_json_guidellm_wrote(small_run):
    raw = json.loads(small_run.json_path.read_text())
    frame = small_run.frame
    assert [b["config"]["strategy"]["streams"] for b in raw["benchmarks"]] == [1, 2]
    assert list(frame["load"]) == [1.0, 2.0]
    for row, b in zip(frame.to_dict("records"), raw["benchmarks"], strict=True):
        m = b["metrics"]
        assert row["requests_ok"] == m["request_totals"]["successful"] >= 3
        assert row["requests_errored"] == 0
        assert row["output_tokens_per_s"] == pytest.approx(
            m["output_tokens_per_second"]["total"]["mean"])
        assert row["requests_per_s"] == pytest.approx(m["requests_per_second"]["total"]["mean"])
        for p in ("p50", "p95", "p99"):
            assert row[f"ttft_{p}_ms"] == pytest.approx(
                m["time_to_first_token_ms"]["successful"]["percentiles"][p])
            assert row[f"itl_{p}_ms"] == pytest.approx(
                m["inter_token_latency_ms"]["successful"]["percentiles"][p])
            assert row[f"latency_{p}_s"] == pytest.approx(
                m["request_latency"]["successful"]["percentiles"][p])
        # Real generation: tokens came back, TTFT before the end of the request.
        assert row["output_tokens_per_s"] > 0
        assert 0 < row["ttft_p50_ms"] / 1000 < row["latency_p50_s"]



def test_the_api_key_is_used_but_never_written(small_run, chat_srv):
    assert small_run.report.config.spec.backend.api_key.get_secret_value() == chat_srv.api_key
    for path in (small_run.json_path, small_run.csv_path, small_run.summary_path):
        assert chat_srv.api_key not in path.read_text()


def test_csv_files_are_written(small_run):
    summary = pd.read_csv(small_run.summary_path)
    assert list(summary.columns) == list(small_run.frame.columns)
    assert len(summary) == 2
    assert small_run.csv_path.stat().st_size > 0
    # GuideLLM's own CSV: a header block and one line per benchmark.
    assert len(pd.read_csv(small_run.csv_path, header=[0, 1, 2])) == 2


def test_a_wrong_key_fails_before_anything_is_sent(target, tmp_path):
    wrong = bench.Target(target.base_url, target.model, target.tokenizer, api_key="wrong")
    with pytest.raises(bench.BenchError, match="401"):
        bench.run_benchmark(wrong, bench.synchronous(max_requests=1), out_dir=tmp_path / "x",
                            progress=False)
    assert not (tmp_path / "x").exists()


def test_load_at_concurrency_32_for_15_s_has_no_errors(target, chat_srv, tmp_path):
    load = bench.concurrent(32, max_requests=None, max_seconds=15, prompt_tokens=32,
                            output_tokens=16)
    with MetricsRecorder(chat_srv, interval=1.0) as rec:
        run = bench.run_benchmark(target, load, out_dir=tmp_path, progress=False)
    row = run.frame.iloc[0]
    # Requests still running when the 15 s are up are cut off (incomplete), never errors.
    assert row["requests_errored"] == 0, row.to_dict()
    assert row["requests_incomplete"] <= 32, row.to_dict()
    # The load was really 32 at once (at least 32 sent), and the server answered under it. How
    # many finish in 15 s is this machine's speed (measured by benchmarks/throughput.py, not
    # checked here).
    assert row["requests_ok"] + row["requests_incomplete"] >= 32, row.to_dict()
    assert row["requests_ok"] >= 1, row.to_dict()
    assert 12 <= row["duration_s"] <= 30
    # The server saw the load: many requests at once at some point during the run.
    metrics = rec.frame()
    assert metrics["requests_running"].max() + metrics["requests_waiting"].max() >= 16
