"""The GuideLLM runs module 5 kept, and which of them is a sweep of the lab's vLLM server.

`bench.run_benchmark` writes every run's tidy table to `<lab home>/benchmarks/<run>/summary.csv`.
The newest *sweep* is the run that measured the server as module 5's section 2 does: concurrent
users only, at three or more levels, not the llama.cpp peer. Tuning runs (two levels, other
configurations) and arrival-rate runs are not sweeps. The wrap-up's scorecard and room mode's
capacity both read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .run import results_dir

if TYPE_CHECKING:
    import pandas as pd

MIN_SWEEP_LEVELS = 3


@dataclass(frozen=True)
class SavedRun:
    """One GuideLLM run module 5 kept: its folder and the table `bench.run_benchmark` wrote."""

    folder: Path
    frame: pd.DataFrame

    def backend(self) -> tuple[str, int | None] | None:
        """(model, port) GuideLLM sent the run to, from its `benchmarks.json`; None when the
        report is missing or unreadable."""
        try:
            report = json.loads((self.folder / "benchmarks.json").read_text())
            backend = report["config"]["spec"]["backend"]
            return str(backend["model"]), urlsplit(str(backend["target"])).port
        except (OSError, ValueError, KeyError, TypeError):
            return None


def saved_runs(folder: Path | None = None) -> list[SavedRun]:
    """Every run under `folder` (default <lab home>/benchmarks) with a readable summary.csv,
    oldest first."""
    import pandas as pd

    found = []
    for summary in (folder if folder is not None else results_dir()).glob("*/summary.csv"):
        try:
            frame = pd.read_csv(summary)
            mtime = summary.stat().st_mtime
        except (OSError, ValueError):
            continue  # a run cut short: the others still count
        if {"run", "strategy", "load", "requests_per_s"} <= set(frame.columns) and len(frame):
            found.append((mtime, SavedRun(summary.parent, frame)))
    return [run for _, run in sorted(found, key=lambda item: item[0])]


def latest_sweep(folder: Path | None = None, *,
                 server: tuple[str, int | None] | None = None) -> SavedRun | None:
    """The newest saved run that swept concurrent users on vLLM (module 5's section 2); with
    `server` (model name, port), the newest that measured that server."""
    for run in reversed(saved_runs(folder)):
        frame = run.frame
        labels = frame["run"].astype(str)
        if ((frame["strategy"] == "concurrent").all() and frame["load"].nunique()
                >= MIN_SWEEP_LEVELS and not labels.str.lower().str.startswith("llama").any()
                and (server is None or run.backend() == server)):
            return run
    return None
