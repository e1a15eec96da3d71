"""ACME's scorecard: what each module measured against ACME's pains, read back for the wrap-up.

    from lab_helpers.support.scorecard import record, scorecard
    record_capacity(run.frame)          # module 5: the verdicts of a GuideLLM run, as facts
    scorecard()                         # one row per module: ACME's pain, what was measured

The facts live in one file the modules record into (`scorecard_store.py`: `record`,
`read_facts`, re-exported here). This module reads them: the scorecard table (a file that
cannot be read is reported, never raised), module 5's saved GuideLLM runs (when module 5
recorded nothing, its row comes from the newest saved sweep of a vLLM server, with module 5's
own verdicts, `bench.capacity`), and the lab's reference figures beside the learner's.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bench.plots import _figure
from ..bench.saved import latest_sweep, saved_runs
from ..bench.slo import ACME, SLO, capacity
from ..paths import REPO_ROOT
from .scorecard_store import (
    FILE_NAME,
    MODULES,
    NOT_RUN,
    PAINS,
    Pain,
    ScorecardError,
    ScorecardWarning,
    read_facts,
    record,
    results_dir,
    scorecard_path,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

REFERENCE_DIR = REPO_ROOT / "benchmarks" / "results"

__all__ = ["PAINS", "Pain", "ScorecardError", "ScorecardWarning", "beside_reference",
           "capacity_facts", "fact_value", "facts", "latest_sweep", "plot_shares",
           "read_facts", "record", "record_capacity", "reference_facts", "results_dir",
           "saved_runs", "scorecard", "scorecard_path"]


# -- module 5: the saved GuideLLM runs (bench.saved finds them) ----------------------------


def capacity_facts(frame: pd.DataFrame, slo: SLO = ACME) -> dict[str, dict[str, Any]]:
    """Module 5's verdicts of one run as facts: {key: {value, label, unit}}.

    No level within the latency targets gives 0 users and 0 requests/s within them: then
    more servers like this one would not help (`bench.servers_needed` says None).
    """
    cap = capacity(frame, slo)
    return {
        "users_within_latency_targets": {
            "value": int(cap.load) if cap else 0, "unit": "users",
            "label": "most concurrent users within ACME's latency targets"},
        "requests_per_s_within_targets": {
            "value": round(cap.requests_per_s, 3) if cap else 0.0, "unit": "requests/s",
            "label": "requests/s within the latency targets"},
        "output_tokens_per_s_within_targets": {
            "value": round(cap.output_tokens_per_s, 1) if cap else 0.0, "unit": "tokens/s",
            "label": "output tokens/s within the latency targets"},
        "best_requests_per_s": {
            "value": round(float(frame["requests_per_s"].max()), 3), "unit": "requests/s",
            "label": "most requests/s at any level"},
        "best_output_tokens_per_s": {
            "value": round(float(frame["output_tokens_per_s"].max()), 1), "unit": "tokens/s",
            "label": "most output tokens/s at any level"},
    }


def record_capacity(frame: pd.DataFrame, slo: SLO = ACME) -> Path:
    """Module 5: record the verdicts of a GuideLLM run (`run.frame`) on the scorecard."""
    path = scorecard_path()
    for key, fact in capacity_facts(frame, slo).items():
        path = record(5, key, fact["value"], label=fact["label"], unit=fact["unit"])
    return path


# -- the scorecard ---------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return f"{value:,.0f}"
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
        return f"{value:,.{digits}f}"
    return str(value)


def _frame_of(facts: dict[int, dict[str, dict[str, Any]]], sources: dict[int, str]
              ) -> pd.DataFrame:
    import pandas as pd

    rows = [{"module": module, "key": key, "label": fact["label"], "value": fact["value"],
             "unit": fact.get("unit", ""), "source": sources.get(module, "recorded"),
             "recorded_at": fact.get("recorded_at", "")}
            for module in sorted(facts) for key, fact in facts[module].items()]
    frame = pd.DataFrame(rows, columns=["module", "key", "label", "value", "unit", "source",
                                        "recorded_at"])
    # as recorded: 2 users stays an int, yes stays a bool
    frame["value"] = pd.Series([row["value"] for row in rows], dtype=object)
    return frame


def _gather(warn: bool) -> tuple[dict[int, dict[str, dict[str, Any]]], dict[int, str],
                                 list[str]]:
    """(facts, where module facts came from when not recorded, problems)."""
    problems: list[str] = []
    try:
        facts = read_facts()
    except ScorecardError as exc:
        facts = {}
        problems.append(str(exc))
        if warn:
            warnings.warn(str(exc), ScorecardWarning, stacklevel=3)
    facts = {m: dict(entries) for m, entries in facts.items() if m in MODULES and entries}
    sources = {m: "recorded" for m in facts}
    if 5 not in facts:
        sweep = latest_sweep()
        if sweep is not None:
            facts[5] = capacity_facts(sweep.frame)
            sources[5] = f"saved GuideLLM run {sweep.folder.name}"
    return facts, sources, problems


def facts(*, warn: bool = True) -> pd.DataFrame:
    """Every fact, one row each: module, key, label, value, unit, source, recorded_at."""
    found, sources, _ = _gather(warn)
    return _frame_of(found, sources)


def scorecard(*, warn: bool = True) -> pd.DataFrame:
    """One row per ACME pain (module): what was measured, or that the module has not run yet.

    An unreadable scorecard file is reported (a warning with the fix, and the rows it would
    have filled say so), never raised: the wrap-up still shows what it can.
    """
    import pandas as pd

    found, sources, problems = _gather(warn)
    rows = []
    for pain in PAINS:
        entries = found.get(pain.module, {})
        if entries:
            measured = "; ".join(
                f"{f['label']}: {_show(f['value'])}{(' ' + f['unit']) if f.get('unit') else ''}"
                for f in entries.values())
            source = sources[pain.module]
        elif problems:
            measured = f"unknown: {FILE_NAME} could not be read (see the warning for the fix)"
            source = ""
        else:
            measured = NOT_RUN.format(module=pain.module)
            source = ""
        rows.append({"module": pain.module, "ACME's pain": pain.pain, "measured": measured,
                     "source": source})
    frame = pd.DataFrame(rows, columns=["module", "ACME's pain", "measured", "source"])
    frame.attrs["problems"] = problems
    return frame


def _startup(runtime: str, which: str) -> Any:
    def pick(data: dict[str, Any]) -> Any:
        return next(r[which] for r in data["results"] if r["runtime"] == runtime)
    return pick


# (module, key, label, unit, file under benchmarks/results, how to read it): the lab's own
# runs on its 2-core machine, under the keys the modules record.
REFERENCES = (
    (1, "startup_s", "cold start, Podman (median)", "s", "startup.json",
     _startup("podman", "cold_median_s")),
    (1, "reuse_s", "reusing a running server (median)", "s", "startup.json",
     _startup("podman", "reuse_median_s")),
    (1, "first_answer_ttft_ms", "time to first token (median)", "ms", "chat_overhead.json",
     lambda d: round(1000 * d["session"]["ttft_median_s"], 1)),
    (1, "first_answer_tokens_per_s", "tokens/s of an answer (median)", "tokens/s",
     "chat_overhead.json", lambda d: d["session"]["tokens_per_s_median"]),
    (2, "asked_valid_pct", "asked in words: schema-valid", "%", "structured.json",
     lambda d: d["summary"]["unconstrained"]["valid_rate"]),
    (2, "constrained_valid_pct", "constrained: schema-valid", "%", "structured.json",
     lambda d: d["summary"]["response_format"]["valid_rate"]),
    (3, "auto_valid_call_pct", "tool_choice auto: valid calls", "%", "tools.json",
     lambda d: round(100 * d["quality"]["auto"]["valid_call"], 1)),
    (3, "required_valid_call_pct", "tool_choice required: valid calls", "%", "tools.json",
     lambda d: round(100 * d["quality"]["required"]["valid_call"], 1)),
    (5, "best_requests_per_s", "most requests/s at any level (lab default)", "requests/s",
     "throughput.json",
     lambda d: max(level["requests_per_s"] for level in d["results"]["default"].values())),
    (5, "best_output_tokens_per_s", "most output tokens/s at any level (lab default)",
     "tokens/s", "throughput.json",
     lambda d: max(level["output_tokens_per_s"] for level in d["results"]["default"].values())),
)


def reference_facts() -> pd.DataFrame:
    """The lab's own figures for the same facts (benchmarks/results/*.json, measured on the
    lab's 2-core machine), to set a learner's own beside; a file that is missing is skipped."""
    import pandas as pd

    rows, cache = [], {}
    for module, key, label, unit, name, read in REFERENCES:
        path = REFERENCE_DIR / name
        try:
            data = cache[name] if name in cache else json.loads(path.read_text())
            cache[name] = data
            value = read(data)
        except (OSError, ValueError, KeyError, StopIteration):
            continue
        rows.append({"module": module, "key": key, "label": label, "reference": value,
                     "unit": unit, "file": f"benchmarks/results/{name}"})
    return pd.DataFrame(rows, columns=["module", "key", "label", "reference", "unit", "file"])


def beside_reference(table: pd.DataFrame) -> pd.DataFrame:
    """A `facts()` table beside the lab's reference figures: one row per fact of either, in
    module order (yours: None where you have no figure; reference: None where the lab has
    none)."""
    import pandas as pd

    ref = reference_facts()
    rows = [{"module": r.module, "label": r.label,
             "yours": fact_value(table, r.module, r.key), "reference": r.reference,
             "unit": r.unit, "file": r.file} for r in ref.itertuples()]
    known = set(zip(ref["module"], ref["key"], strict=True))
    rows += [{"module": r.module, "label": r.label, "yours": r.value, "reference": None,
              "unit": r.unit, "file": ""} for r in table.itertuples()
             if (r.module, r.key) not in known]
    rows.sort(key=lambda row: row["module"])
    frame = pd.DataFrame(rows, columns=["module", "label", "yours", "reference", "unit", "file"])
    for column in ("yours", "reference"):  # as recorded, None where there is no figure
        frame[column] = pd.Series([row[column] for row in rows], dtype=object)
    return frame


def fact_value(table: pd.DataFrame, module: int, key: str, default: Any = None) -> Any:
    """One value of a `facts()` table (default when that fact is missing)."""
    hit = table[(table["module"] == module) & (table["key"] == key)]
    if not len(hit):
        return default
    value = hit["value"].iloc[-1]
    return value.item() if hasattr(value, "item") else value


def plot_shares(table: pd.DataFrame) -> Figure | None:
    """Bars of every fact measured in percent (modules 2 and 3: valid answers and calls)."""
    shares = table[table["unit"] == "%"]
    if shares.empty:
        return None
    fig = _figure(8, 0.8 + 0.45 * len(shares))  # module 5's charts' figure: no pyplot state
    ax = fig.subplots()
    names = [f"module {m}: {label}" for m, label in zip(shares["module"], shares["label"],
                                                          strict=True)]
    values = [float(v) for v in shares["value"]]
    ax.barh(names[::-1], values[::-1], color="tab:blue")
    for y, v in enumerate(values[::-1]):
        ax.text(min(v, 100) + 1, y, f"{v:.3g}%", va="center")
    ax.set_xlim(0, 112)
    ax.set_xlabel("share of answers (%)")
    ax.set_title("Valid answers and tool calls, as the modules measured them")
    return fig
