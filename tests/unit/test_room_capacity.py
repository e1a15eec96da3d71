"""How many attendees one server holds, from module 5's newest saved sweep of the lab's vLLM
server (not a tuning variant, not the llama.cpp peer)."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from lab_helpers.bench import SLO, room_capacity
from lab_helpers.bench.report import COLUMNS

# users: (p95 TTFT ms, p95 end-to-end s, requests/s)
SWEEP = {1: (2533.0, 44.2, 0.1), 2: (5000.0, 30.0, 0.2), 4: (8959.0, 27.3, 0.3)}


def _summary(label: str, levels: dict[int, tuple[float, float, float]]) -> pd.DataFrame:
    rows = []
    for users, (ttft, latency, rps) in levels.items():
        row = dict.fromkeys(COLUMNS, 0.0)
        row.update(run=label, benchmark=f"concurrent@{users}", strategy="concurrent",
                   load=float(users), requests_ok=10, requests_errored=0, error_rate=0.0,
                   ttft_p95_ms=ttft, latency_p95_s=latency, requests_per_s=rps,
                   output_tokens_per_s=30.0 * rps)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _save(folder, name: str, frame: pd.DataFrame, age_s: float,
          backend: tuple[str, str] = ("smollm2-135m-instruct", "http://127.0.0.1:8000")) -> None:
    (folder / name).mkdir()
    frame.to_csv(folder / name / "summary.csv", index=False)
    report = {"config": {"spec": {"backend": {"kind": "openai_http", "model": backend[0],
                                              "target": backend[1], "api_key": "**********"}}},
              "benchmarks": []}  # what GuideLLM 0.8 writes first in benchmarks.json
    (folder / name / "benchmarks.json").write_text(json.dumps(report))
    stamp = time.time() - age_s
    os.utime(folder / name / "summary.csv", (stamp, stamp))


@pytest.fixture
def results(tmp_path):
    """Module 5's runs as it leaves them: an older sweep, the sweep, then (newer) a tuning
    variant on two levels and the llama.cpp peer: only the sweep counts."""
    _save(tmp_path, "20261201-100000-old", _summary("old", {1: SWEEP[1]}), age_s=400)
    _save(tmp_path, "20261202-100000-module-5", _summary("module 5", SWEEP), age_s=300)
    _save(tmp_path, "20261202-100500-int8-weights",
          _summary("int8-weights", {1: (100.0, 1.0, 1.0), 16: (200.0, 2.0, 9.0)}), age_s=200)
    _save(tmp_path, "20261202-101000-llama-server",
          _summary("llama-server -np 16", {1: (50.0, 1.0, 2.0), 4: (60.0, 1.5, 5.0),
                                           16: (70.0, 2.0, 9.0)}), age_s=100)
    return tmp_path


def test_the_most_users_that_met_the_latency_targets(results):
    both = room_capacity(results, SLO(ttft_p95_ms=10_000, latency_p95_s=50))
    assert both is not None and both.attendees_per_server == 4
    assert both.source.name == "20261202-100000-module-5" and both.run == "module 5"
    assert both.replicas(30) == 8 and both.replicas(4) == 1
    assert "30 attendees need 8 servers" in both.describe(30)
    one = room_capacity(results, SLO(ttft_p95_ms=3_000, latency_p95_s=50))
    assert one is not None and one.attendees_per_server == 1 and one.replicas(30) == 30


def test_no_level_meeting_acmes_targets_says_more_servers_would_not_help(results):
    acme = room_capacity(results)
    assert acme is not None and acme.attendees_per_server is None
    assert acme.replicas(30) is None
    assert "would not help" in acme.describe(30)


def test_nothing_saved_is_none(tmp_path):
    assert room_capacity(tmp_path) is None


def test_only_a_sweep_of_the_rooms_own_server_counts(results):
    """A newer sweep of another model, or of a server on another port, says nothing about the
    room's server: `room up` asks for its own (model, port)."""
    _save(results, "20261202-102000-other-model", _summary("module 5", {1: (1.0, 1.0, 5.0),
          2: (1.0, 1.0, 9.0), 4: (1.0, 1.0, 12.0)}), age_s=50,
          backend=("qwen2.5-3b-instruct", "http://127.0.0.1:8000"))
    _save(results, "20261202-103000-other-port", _summary("module 5", {1: (1.0, 1.0, 5.0),
          2: (1.0, 1.0, 9.0), 4: (1.0, 1.0, 12.0)}), age_s=40,
          backend=("smollm2-135m-instruct", "http://127.0.0.1:18123"))
    slo = SLO(ttft_p95_ms=10_000, latency_p95_s=50)
    newest = room_capacity(results, slo)
    assert newest is not None and newest.source.name == "20261202-103000-other-port"
    ours = room_capacity(results, slo, server=("smollm2-135m-instruct", 8000))
    assert ours is not None and ours.source.name == "20261202-100000-module-5"
    assert room_capacity(results, slo, server=("smollm2-135m-instruct", 9999)) is None
