"""The workshop's core path, timed: every module notebook without its optional cells, in order.

    .venv/bin/python -m benchmarks.core_path [--runtime auto|local|podman] [--only 01 02 ...]

(run from the repository's root.) Each notebook's core path (every cell not tagged `optional`,
hidden solutions included: they stand for the learner's own attempt) runs top to bottom in a
fresh kernel, as a learner on the CPU profile would run it: modules in order, in one throwaway
lab home (the bundled models linked from the lab's, its own ports), the first server start cold
(no `./lab start` before it: the conservative case). Per module it writes the cells' run time,
the core markdown's words and reading time (words / 200 per minute) and the agenda's core
minutes to benchmarks/results/core_path.json, which tests/unit/test_agenda.py reads to check that
each agenda gives its core path enough time and that all of them fit 90 minutes. That a core
path runs at all also shows that skipping the optional cells breaks no later cell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from benchmarks.publish import RESULTS, publish
from tests import notebook_agenda as na

PORT_BASE = "18900"


def _seconds(cell) -> float:
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def run_core(path: Path, folder: Path) -> dict:
    nb = na.read(path)
    _, rows = na.agenda(nb)
    words = na.core_words(nb)
    nb.cells = [c for c in nb.cells if not na.is_optional(c)]
    copy = folder / path.name
    nbformat.write(nb, copy)
    began = time.perf_counter()
    NotebookClient(nb, timeout=1800, record_timing=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    wall = time.perf_counter() - began
    cells = [(i, _seconds(c), c.source.splitlines()[0] if c.source else "")
             for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    run_s = sum(s for _, s, _ in cells)
    return {
        "core_code_cells": len(cells),
        "core_run_s": round(run_s, 1),
        "kernel_wall_s": round(wall, 1),
        "core_words": words,
        "reading_min": round(words / na.WORDS_PER_MINUTE, 1),
        "core_min_floor": round(words / na.WORDS_PER_MINUTE + run_s / 60, 1),
        "agenda_core_min": sum(r.minutes for r in rows if r.path == "core"),
        "slowest_cells_s": [{"first_line": line[:70], "s": round(s, 1)}
                            for _, s, line in sorted(cells, key=lambda c: -c[1])[:3]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", default="auto", choices=["auto", "local", "podman"])
    parser.add_argument("--only", nargs="*", default=None,
                        help="module numbers to run (the others keep their stored figures)")
    args = parser.parse_args()

    from lab_helpers.paths import lab_home

    shared = lab_home()
    home = Path(tempfile.mkdtemp(prefix="vllm-lab-core-path-"))
    for name in ("models", "mcp-node"):
        if (shared / name).exists():
            (home / name).symlink_to(shared / name, target_is_directory=True)
    os.environ.update(VLLM_LAB_HOME=str(home), VLLM_LAB_PORT_BASE=PORT_BASE)
    if args.runtime != "auto":
        os.environ["VLLM_LAB_RUNTIME"] = args.runtime

    out = RESULTS / "core_path.json"
    report = json.loads(out.read_text()) if out.exists() and args.only else {"modules": {}}
    folder = Path(tempfile.mkdtemp(prefix=".core-path-bench-", dir=na.REPO_ROOT))
    try:
        for path in na.module_notebooks():
            if args.only and path.name[:2] not in args.only:
                continue
            print(f"{path.name} ...", flush=True)
            report["modules"][path.stem] = run_core(path, folder)
            print(json.dumps(report["modules"][path.stem]), flush=True)
    finally:
        from lab_helpers import server

        server.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
    modules = report["modules"].values()
    report.update(
        benchmark="core_path", machine=f"{platform.node()} ({os.cpu_count()} cores)",
        profile="cpu", runtime=args.runtime, first_start="cold",
        total_core_min_floor=round(sum(m["core_min_floor"] for m in modules), 1),
        total_agenda_core_min=sum(m["agenda_core_min"] for m in modules),
    )
    publish(report, out)


if __name__ == "__main__":
    main()
