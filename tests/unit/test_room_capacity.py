"""How many attendees one server holds, from a saved GuideLLM run (a real 0.8.1 report)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab_helpers.bench import SLO, load_report, report_frame, room_capacity

REPORT = Path(__file__).resolve().parents[1] / "data" / "guidellm-0.8.1-report.json"


@pytest.fixture
def results(tmp_path):
    """Two saved runs as module 5 leaves them: only the newest counts."""
    frame = report_frame(load_report(REPORT), label="module 5")
    for name in ("20261201-100000-old", "20261202-100000-module-5"):
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / "summary.csv", index=False)
    # the older run has one level only (1 user); the newest has both
    frame.head(1).to_csv(tmp_path / "20261201-100000-old" / "summary.csv", index=False)
    return tmp_path


def test_the_most_users_that_met_the_latency_targets(results):
    # the report's levels: 1 user (p95 TTFT 2.5 s, e2e 44 s) and 4 users (9.0 s, 27 s)
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
