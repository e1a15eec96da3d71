"""Seconds from `start()` to a healthy server: cold and with a reusable server, per runtime.

    .venv/bin/python benchmarks/startup.py [--runs 2] [--runtimes local podman] [--compile]

Prints JSON (and writes it to benchmarks/results/startup.json). Targets on the lab's 2-core
machine: cold <= 30 s for the default cpu profile, reuse <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from publish import RESULTS, publish

from lab_helpers import server
from lab_helpers.server.config import chat_server
from lab_helpers.server.image import image_for
from lab_helpers.server.podman_cli import podman_status

TARGET_COLD_S = 30.0
TARGET_REUSE_S = 2.0


def measure(runtime_kind: str, runs: int, eager: bool) -> dict:
    runtime = server.get_runtime(runtime_kind)
    config = chat_server("cpu", name=f"bench-{runtime_kind}", port=server.free_port(),
                         enforce_eager=eager)
    if not eager:
        # torch.compile needs a C++ compiler inside the container: the -compile image.
        config = config.replace(image=image_for(compiler=True))
    runtime.remove(config.name)
    cold, reuse = [], []
    for _ in range(runs):
        began = time.perf_counter()
        srv = runtime.start(config)
        cold.append(time.perf_counter() - began)
        assert not srv.reused
        began = time.perf_counter()
        again = runtime.start(config)
        reuse.append(time.perf_counter() - began)
        assert again.reused
        srv.stop()
    return {
        "runtime": runtime_kind,
        "enforce_eager": eager,
        "cold_s": [round(s, 2) for s in cold],
        "cold_median_s": round(statistics.median(cold), 2),
        "reuse_s": [round(s, 3) for s in reuse],
        "reuse_median_s": round(statistics.median(reuse), 3),
        "cold_target_met": statistics.median(cold) <= TARGET_COLD_S if eager else None,
        "reuse_target_met": statistics.median(reuse) <= TARGET_REUSE_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--runtimes", nargs="+", default=None)
    parser.add_argument("--compile", action="store_true",
                        help="also measure with torch.compile (needs a compiler)")
    args = parser.parse_args()
    runtimes = args.runtimes or (["local", "podman"] if podman_status()[0] else ["local"])
    modes = [True, False] if args.compile else [True]
    results = {
        "benchmark": "startup",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "targets": {"cold_s": TARGET_COLD_S, "reuse_s": TARGET_REUSE_S},
        "results": [measure(rt, args.runs, eager) for rt in runtimes for eager in modes],
    }
    publish(results, RESULTS / "startup.json")


if __name__ == "__main__":
    main()
