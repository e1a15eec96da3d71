"""Module 1's first start cell after `./lab start`: seconds until it returns a healthy server.

    .venv/bin/python benchmarks/first_cell.py [--after 60] [--runtime auto|local|podman]

`./lab start` calls `vllm-lab warm` (lab_helpers.cli.start.warm_start) while JupyterLab boots;
a learner reaches module 1's start cell (`server.start(chat_server("cpu"))`) some time later.
This runs exactly that in a throwaway lab home (the bundled models linked from the lab's, its
own ports): warm_start, wait `--after` seconds, then the start cell, timed; and, for scale,
the same cell with nothing started before it (a cold start). Prints JSON and writes it to
benchmarks/results/first_cell.json. Target: <= 2 s a minute after the URL.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from publish import RESULTS, publish

TARGET_S = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--after", type=float, default=60.0,
                        help="seconds between ./lab start and the learner's first start cell")
    parser.add_argument("--runtime", default="auto", choices=["auto", "local", "podman"])
    args = parser.parse_args()

    from lab_helpers.paths import models_dir

    shared_models = models_dir()
    home = Path(tempfile.mkdtemp(prefix="vllm-lab-first-cell-"))
    (home / "models").symlink_to(shared_models, target_is_directory=True)
    os.environ.update(VLLM_LAB_HOME=str(home), VLLM_LAB_PORT_BASE="18800")
    if args.runtime != "auto":
        os.environ["VLLM_LAB_RUNTIME"] = args.runtime

    from lab_helpers import server
    from lab_helpers.cli.start import warm_start
    from lab_helpers.server.config import chat_server

    try:
        warm = warm_start("cpu")
        assert warm.action == "started", warm.message
        time.sleep(args.after)
        began = time.perf_counter()
        srv = server.start(chat_server("cpu"))
        first_cell = time.perf_counter() - began
        assert srv.reused, "the first start cell started a second server"
        runtime = srv.runtime.kind
        server.stop_all()
        began = time.perf_counter()
        cold = server.start(chat_server("cpu"))
        cold_s = time.perf_counter() - began
        assert not cold.reused
    finally:
        server.stop_all()
    publish({
        "benchmark": "first_cell",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runtime": runtime,
        "after_lab_start_s": args.after,
        "first_cell_s": round(first_cell, 2),
        "cold_first_cell_s": round(cold_s, 2),
        "target_s": TARGET_S,
        "target_met": first_cell <= TARGET_S,
    }, RESULTS / "first_cell.json")


if __name__ == "__main__":
    main()
