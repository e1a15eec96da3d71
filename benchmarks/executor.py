"""Where the CPU model runs: inside vLLM's engine core process, or in a worker process of its own?

    .venv/bin/python benchmarks/executor.py [--rounds 2] [--requests 64]

vLLM on CPU runs the model in a worker process of its own (the multiprocess executor) unless
`--distributed-executor-backend uni` comes with VLLM_ENABLE_V1_MULTIPROCESSING=0 (without it
vLLM turns `uni` back into `mp`). The lab's CPU profile runs it inside the engine core
(`ServerConfig.worker_process=False`): one Python process fewer to start (importing vLLM and
torch is most of a start here) and none to hand every step to. This measures both on fresh local
servers, interleaved `--rounds` times: seconds from `start()` to healthy, and GuideLLM's output
tokens/s at 16 users (128 prompt / 64 output tokens), each compared with its own round's lab
default. Writes benchmarks/results/executor.json.
Targets: a start at least 5 s shorter, and throughput not below the default's by more than 5%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from publish import RESULTS, publish

from lab_helpers import bench
from lab_helpers.server.config import chat_server, usable_cores

TARGET_START_SAVED_S = 5.0
TARGET_THROUGHPUT_RATIO = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=64, help="requests at 16 users")
    args = parser.parse_args()
    base = chat_server("cpu")
    variants = {v.label: v for v in bench.cpu_variants(base)}
    chosen = [variants["default"], variants["worker-process"]]
    load = bench.concurrent([16], max_requests=args.requests, prompt_tokens=128,
                            output_tokens=64)
    starts: dict[str, list[float]] = {v.label: [] for v in chosen}
    tokens: dict[str, list[float]] = {v.label: [] for v in chosen}
    began = time.monotonic()
    for r in range(args.rounds):
        for variant in chosen:
            asked = time.monotonic()
            run = bench.run_variant(variant, load, runtime="local", progress=False,
                                    on_start=lambda _srv, label=variant.label, t=asked:
                                    starts[label].append(round(time.monotonic() - t, 1)))
            tokens[variant.label].append(round(float(run.frame.iloc[0]["output_tokens_per_s"]),
                                               1))
            print(variant.label, f"round {r + 1} done", file=sys.stderr, flush=True)
    ratio = [round(d / w, 3) for d, w in zip(tokens["default"], tokens["worker-process"],
                                             strict=True)]
    saved = [round(w - d, 1) for d, w in zip(starts["default"], starts["worker-process"],
                                             strict=True)]
    report = {
        "benchmark": "executor",
        "machine": {"cpus": os.cpu_count(), "usable_cores": usable_cores(),
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "load": load.describe(),
        "runtime": "local",
        "rounds": args.rounds,
        "changes": {v.label: v.change for v in chosen},
        "start_s": starts,
        "output_tokens_per_s_at_16": tokens,
        "start_s_saved_by_default": saved,
        "default_vs_worker_process_at_16": ratio,
        "targets": {"start_s_saved": TARGET_START_SAVED_S,
                    "throughput_ratio": TARGET_THROUGHPUT_RATIO},
        "targets_met": bool(statistics.median(saved) >= TARGET_START_SAVED_S
                            and statistics.median(ratio) >= TARGET_THROUGHPUT_RATIO),
        "seconds": round(time.monotonic() - began),
    }
    publish(report, RESULTS / "executor.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
