"""ACME's scorecard (lab_helpers/support/scorecard.py): facts recorded by the modules, merged
in one file in the lab home, read back one row per ACME pain; module 5's saved GuideLLM runs
when module 5 recorded nothing; a bad file reported, never a crash."""

from __future__ import annotations

import json
import os
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from lab_helpers.bench.report import COLUMNS
from lab_helpers.errors import LabError
from lab_helpers.support import scorecard as sc


def _row(module: int, table: pd.DataFrame) -> pd.Series:
    return table.set_index("module").loc[module]


# -- record and read back --------------------------------------------------------------------


def test_nothing_recorded_every_module_says_run_it(lab_home):
    card = sc.scorecard()
    assert list(card["module"]) == [1, 2, 3, 4, 5]
    assert list(card["measured"]) == [f"not run yet: run module {m}" for m in range(1, 6)]
    assert card["ACME's pain"].tolist()[0] == "manual model management"
    assert card.attrs["problems"] == []
    assert sc.facts().empty
    assert not sc.scorecard_path().exists()  # reading writes nothing


def test_a_recorded_fact_fills_its_row_only(lab_home):
    path = sc.record(1, "startup_s", 23.44, label="seconds until the server answered", unit="s")
    assert path == lab_home / "results" / "scorecard.json"
    card = sc.scorecard()
    assert _row(1, card)["measured"] == "seconds until the server answered: 23.4 s"  # 3 figures
    assert _row(1, card)["source"] == "recorded"
    assert _row(2, card)["measured"] == "not run yet: run module 2"


def test_records_merge_and_a_key_recorded_again_replaces(lab_home):
    sc.record(2, "asked_valid_pct", 12.5, label="asked in words: schema-valid", unit="%")
    sc.record(2, "constrained_valid_pct", 100.0, label="constrained: schema-valid", unit="%")
    sc.record(4, "approved_calls", 3, label="calls approved", unit="calls")
    sc.record(2, "asked_valid_pct", 25.0, label="asked in words: schema-valid", unit="%")
    stored = json.loads(sc.scorecard_path().read_text())
    assert stored["version"] == 1
    assert set(stored["facts"]) == {"2", "4"}
    assert stored["facts"]["2"]["asked_valid_pct"]["value"] == 25.0
    table = sc.facts()
    assert len(table) == 3
    assert sc.fact_value(table, 2, "asked_valid_pct") == 25.0
    assert sc.fact_value(table, 2, "missing", default="none") == "none"
    assert _row(2, sc.scorecard())["measured"] == (
        "asked in words: schema-valid: 25 %; constrained: schema-valid: 100 %")


def test_values_from_a_notebook_are_stored_as_plain_json(lab_home):
    sc.record(3, "required_valid_call_pct", np.float64(95.5), label="valid calls", unit="%")
    sc.record(4, "denied_calls", np.int64(2), label="calls denied")
    sc.record(4, "gate_enforced", True, label="approval enforced in the tool")
    table = sc.facts()
    assert sc.fact_value(table, 3, "required_valid_call_pct") == 95.5
    stored = json.loads(sc.scorecard_path().read_text())["facts"]
    assert stored["4"]["denied_calls"]["value"] == 2
    assert "calls denied: 2; approval enforced in the tool: yes" == \
        _row(4, sc.scorecard())["measured"]


@pytest.mark.parametrize(("args", "kwargs"), [
    ((9, "x", 1), {"label": "a module that does not exist"}),
    ((1, "", 1), {"label": "no key"}),
    ((1, "x", 1), {"label": "  "}),
    ((1, "x", float("nan")), {"label": "nothing measured"}),
    ((1, "x", float("inf")), {"label": "nothing measured"}),
    ((1, "x", [1, 2]), {"label": "a list"}),
    ((1, "x", None), {"label": "nothing"}),
])
def test_a_fact_that_cannot_be_shown_is_refused_with_the_fix(lab_home, args, kwargs):
    with pytest.raises(sc.ScorecardError) as err:
        sc.record(*args, **kwargs)
    assert isinstance(err.value, LabError) and err.value.fix
    assert not sc.scorecard_path().exists()


def test_the_write_leaves_no_partial_file_behind(lab_home):
    for i in range(5):
        sc.record(1, f"k{i}", i, label=f"fact {i}")
    folder = sc.results_dir()
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == \
        ["scorecard.json"]


def test_records_from_several_threads_at_once_all_stay(lab_home):
    def write(module: int) -> None:
        for i in range(10):
            sc.record(module, f"k{i}", i, label=f"fact {i}")

    threads = [threading.Thread(target=write, args=(m,)) for m in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sc.facts()) == 30


# -- a bad file is reported, never a crash ---------------------------------------------------


@pytest.mark.parametrize("content", [
    "{not json", "[1, 2]", '{"facts": {"one": {}}}', '{"facts": {"1": {"k": {"value": 1}}}}',
    b"\xff\xfe\x00",
])
def test_an_unreadable_file_is_reported_in_the_table_and_a_warning(lab_home, content):
    path = sc.scorecard_path()
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.warns(sc.ScorecardWarning, match="cannot be read"):
        card = sc.scorecard()
    assert all(m.startswith("unknown: scorecard.json could not be read") for m in card["measured"])
    assert "Fix: move it away" in card.attrs["problems"][0]
    with pytest.raises(sc.ScorecardError) as err:
        sc.read_facts()
    assert str(path) in err.value.fix


def test_record_sets_an_unreadable_file_aside_and_starts_again(lab_home):
    path = sc.scorecard_path()
    path.parent.mkdir(parents=True)
    path.write_text("{cut short")
    with pytest.warns(sc.ScorecardWarning, match="moved to"):
        sc.record(1, "startup_s", 20.0, label="seconds to healthy", unit="s")
    kept = list(path.parent.glob("scorecard.json.unreadable-*"))
    assert [p.read_text() for p in kept] == ["{cut short"]
    assert sc.fact_value(sc.facts(), 1, "startup_s") == 20.0


# -- module 5: the saved GuideLLM runs -------------------------------------------------------


def _summary(label: str, levels: dict[int, tuple[float, float, float, float]],
             strategy: str = "concurrent") -> pd.DataFrame:
    """A run's summary.csv: {users: (ttft p95 ms, latency p95 s, requests/s, out tokens/s)}."""
    rows = []
    for users, (ttft, latency, rps, tps) in levels.items():
        row = dict.fromkeys(COLUMNS, 0.0)
        row.update(run=label, benchmark=f"{strategy}@{users}", strategy=strategy,
                   load=float(users), requests_ok=10, requests_errored=0, error_rate=0.0,
                   ttft_p95_ms=ttft, latency_p95_s=latency, requests_per_s=rps,
                   output_tokens_per_s=tps)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _save(lab_home, name: str, frame: pd.DataFrame, age_s: float = 0) -> None:
    folder = lab_home / "benchmarks" / name
    folder.mkdir(parents=True)
    frame.to_csv(folder / "summary.csv", index=False)
    stamp = time.time() - age_s
    os.utime(folder / "summary.csv", (stamp, stamp))


SWEEP = {1: (200.0, 2.0, 0.5, 30.0), 2: (400.0, 2.5, 0.9, 55.0), 4: (900.0, 4.0, 1.2, 70.0)}


def test_module_5_without_a_record_is_read_from_its_newest_saved_sweep(lab_home):
    _save(lab_home, "old-sweep", _summary("vLLM (lab default)", {
        1: (100.0, 1.0, 9.0, 500.0), 2: (100.0, 1.0, 9.0, 500.0), 4: (100.0, 1.0, 9.0, 500.0)}),
        age_s=600)
    _save(lab_home, "sweep", _summary("vLLM (lab default)", SWEEP), age_s=300)
    # newer, but not a sweep of vLLM: two levels (tuning), llama.cpp's server, Poisson rates
    _save(lab_home, "tuning", _summary("int8-weights", {1: SWEEP[1], 16: SWEEP[4]}), age_s=200)
    _save(lab_home, "peer", _summary("llama-server -np 16", SWEEP), age_s=100)
    _save(lab_home, "rates", _summary("vLLM Poisson", SWEEP, strategy="poisson"), age_s=50)
    (lab_home / "benchmarks" / "broken").mkdir()
    (lab_home / "benchmarks" / "broken" / "summary.csv").write_text("")

    assert sc.latest_sweep().folder.name == "sweep"
    table = sc.facts()
    assert set(table["source"]) == {"saved GuideLLM run sweep"}
    # ACME's latency targets (p95 TTFT < 500 ms, p95 end-to-end < 3 s) hold up to 2 users
    assert sc.fact_value(table, 5, "users_within_latency_targets") == 2
    assert sc.fact_value(table, 5, "requests_per_s_within_targets") == 0.9
    assert sc.fact_value(table, 5, "output_tokens_per_s_within_targets") == 55.0
    assert sc.fact_value(table, 5, "best_requests_per_s") == 1.2
    assert sc.fact_value(table, 5, "best_output_tokens_per_s") == 70.0
    row = _row(5, sc.scorecard())
    assert row["source"] == "saved GuideLLM run sweep"
    assert row["measured"].startswith(
        "most concurrent users within ACME's latency targets: 2 users; "
        "requests/s within the latency targets: 0.90 requests/s")


def test_a_sweep_that_never_meets_the_latency_targets_says_zero(lab_home):
    slow = {u: (600.0 * u, 4.0 * u, 0.3 * u, 20.0 * u) for u in (1, 2, 4)}
    _save(lab_home, "slow", _summary("vLLM (lab default)", slow))
    table = sc.facts()
    assert sc.fact_value(table, 5, "users_within_latency_targets") == 0
    assert sc.fact_value(table, 5, "requests_per_s_within_targets") == 0.0
    assert sc.fact_value(table, 5, "best_requests_per_s") == 1.2


def test_recorded_module_5_facts_win_over_saved_runs(lab_home):
    _save(lab_home, "sweep", _summary("vLLM (lab default)", SWEEP))
    sc.record_capacity(_summary("vLLM (lab default)", {1: SWEEP[1], 2: SWEEP[2], 8: (
        300.0, 2.9, 2.5, 150.0)}))
    table = sc.facts()
    assert set(table.loc[table["module"] == 5, "source"]) == {"recorded"}
    assert sc.fact_value(table, 5, "users_within_latency_targets") == 8
    assert sc.fact_value(table, 5, "best_requests_per_s") == 2.5


def test_no_saved_runs_leaves_module_5_not_run(lab_home):
    _save(lab_home, "tuning", _summary("default", {1: SWEEP[1], 16: SWEEP[4]}))
    assert sc.latest_sweep() is None
    assert _row(5, sc.scorecard())["measured"] == "not run yet: run module 5"


def test_the_reference_figures_are_the_results_files(lab_home):
    from lab_helpers.paths import REPO_ROOT

    results = REPO_ROOT / "benchmarks" / "results"
    ref = sc.reference_facts().set_index("key")
    assert set(ref["file"]) <= {f"benchmarks/results/{p.name}" for p in results.glob("*.json")}
    structured = json.loads((results / "structured.json").read_text())["summary"]
    assert ref.loc["constrained_valid_pct", "reference"] == \
        structured["response_format"]["valid_rate"]
    throughput = json.loads((results / "throughput.json").read_text())["results"]["default"]
    assert ref.loc["best_requests_per_s", "reference"] == max(
        level["requests_per_s"] for level in throughput.values())
    podman = [r for r in json.loads((results / "startup.json").read_text())["results"]
              if r["runtime"] == "podman"]
    assert ref.loc["startup_s", "reference"] == podman[0]["cold_median_s"]


def test_your_figures_sit_beside_the_references(lab_home):
    sc.record(2, "constrained_valid_pct", 95.0, label="constrained: schema-valid", unit="%")
    sc.record(4, "denied_calls", 1, label="calls denied", unit="calls")
    both = sc.beside_reference(sc.facts())
    assert list(both["module"]) == sorted(both["module"])
    row = both[both["label"] == "constrained: schema-valid"].iloc[0]
    assert row["yours"] == 95.0 and row["reference"] == 100.0
    denied = both[both["label"] == "calls denied"].iloc[0]
    assert denied["yours"] == 1 and denied["reference"] is None and denied["file"] == ""
    assert both.loc[both["label"] != "constrained: schema-valid", "yours"].map(
        lambda v: v is None or v == 1).all()


def test_shares_are_charted_only_when_there_are_some(lab_home):
    assert sc.plot_shares(sc.facts()) is None
    sc.record(1, "startup_s", 20.0, label="seconds to healthy", unit="s")
    assert sc.plot_shares(sc.facts()) is None
    sc.record(2, "asked_valid_pct", 12.5, label="asked in words: schema-valid", unit="%")
    sc.record(2, "constrained_valid_pct", 100.0, label="constrained: schema-valid", unit="%")
    fig = sc.plot_shares(sc.facts())
    bars = fig.axes[0].patches
    assert sorted(b.get_width() for b in bars) == [12.5, 100.0]


def test_reading_never_warns_when_all_is_well(lab_home):
    sc.record(1, "startup_s", 20.0, label="seconds to healthy", unit="s")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc.scorecard()
        sc.facts()


# -- the wrap-up notebook's checks fail on a wrong result ------------------------------------
# (as tests/unit/test_notebook_checks.py does for modules 1-5: the cell's own source, run
# after the notebook's imports, once right and once per wrong value)

WRAP_UP = "06_wrap_up"


def _run_check(line: str, **bound):
    from tests.unit.test_notebook_checks import check_cell, run_cell

    return run_cell(WRAP_UP, check_cell(WRAP_UP, line), **bound)


def test_the_scorecard_check_fails_on_a_wrong_scorecard(lab_home):
    line = 'assert list(card["module"]) == [1, 2, 3, 4, 5]'
    sc.record(2, "constrained_valid_pct", 100.0, label="constrained: schema-valid", unit="%")
    _save(lab_home, "sweep", _summary("vLLM (lab default)", SWEEP))
    right = sc.scorecard()
    _run_check(line, card=right)  # the cell reads the facts itself, the card from the cell above
    claims_module_1 = right.copy()
    claims_module_1.loc[0, "measured"] = "startup: 20 s"
    forgets_module_2 = right.copy()
    forgets_module_2.loc[1, "measured"] = "not run yet: run module 2"
    for wrong in (right.iloc[:4], claims_module_1, forgets_module_2):
        with pytest.raises(AssertionError):
            _run_check(line, card=wrong)
    sc.scorecard_path().write_text("{not json")
    with pytest.warns(sc.ScorecardWarning):
        unreadable = sc.scorecard()
    with pytest.warns(sc.ScorecardWarning), pytest.raises(AssertionError, match="move it away"):
        _run_check(line, card=unreadable)


def test_the_server_count_check_fails_on_a_wrong_count():
    line = "def check_servers(n):"
    bound = {"per_server": 3.45, "PEAK_REQUESTS_PER_S": 50}
    _run_check(line, servers_for_peak=15, **bound)
    _run_check(line, servers_for_peak=..., **bound)  # not done yet: no failure
    for wrong in (14, 16, 14.5, 50 / 3.45):
        with pytest.raises(AssertionError):
            _run_check(line, servers_for_peak=wrong, **bound)


def test_the_gpu_flags_check_fails_on_a_wrong_set():
    from lab_helpers.server.config import chat_server

    line = "def check_gpu_flags(flags):"
    bound = {"gpu_cfg": chat_server("gpu"), "cpu_cfg": chat_server("cpu")}
    right = {"--gpu-memory-utilization"}
    assert right == {a for a in bound["gpu_cfg"].vllm_args() if a.startswith("--")} - \
        {a for a in bound["cpu_cfg"].vllm_args() if a.startswith("--")}
    _run_check(line, gpu_only_flags=right, **bound)
    _run_check(line, gpu_only_flags=..., **bound)
    for wrong in (set(), {"--gpu-memory-utilization", "--model"}, {"--enforce-eager"}):
        with pytest.raises(AssertionError):
            _run_check(line, gpu_only_flags=wrong, **bound)
