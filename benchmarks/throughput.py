"""Output tokens/s and TTFT under load: the lab's default vLLM, a tuned vLLM, and llama-server.

    .venv/bin/python benchmarks/throughput.py [--streams 1 4 16 32] [--rounds 2] [--repeats 2]
        [--tuned int8-weights,compiled] [--output-tokens 64] [--runtime local]
        [--out benchmarks/results/throughput.json]

One run measures every side with the same GuideLLM load (concurrent users, `--rounds` requests
per user per level, 128 prompt / 64 output tokens, completions API), one server at a time, each
started fresh on a free port and stopped afterwards:
- "default": the lab's default as module 1 builds it (`chat_server("cpu")`, unchanged);
- "tuned": the default plus the single changes named by `--tuned` (labels of
  `bench.cpu_variants`), each of which module 5 and `benchmarks/tuning.py` measure alone first.
  By default module 5's tuned configuration, `bench.cpu_tuned` (int8 weights + torch.compile);
- "llama-server": llama.cpp on the same model as Q4_1 GGUF, `--parallel 16`, as many threads as
  vLLM uses cores (skipped when the optional extra is not installed).
The three sides run `--repeats` times in turn (default, tuned, llama-server, default, ...):
throughput on this machine drifts by 10-30% over a long run, so each side's figure is its median
over the repeats and every repeat's ratio is recorded too. Local processes by default: under
Podman torch.compile needs `vllm-lab build-image --compiler`.

Targets (at concurrency 16): tuned >= 1.15 x default; tuned >= 1.5 x llama-server. The
single-stream ratio is reported as it is. Prints JSON and keeps it in benchmarks/results/. The
machine is shared: the load average before and after is part of the record.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from publish import RESULTS, publish

from lab_helpers import bench
from lab_helpers.bench import peer
from lab_helpers.server.config import chat_server, usable_cores

TARGET_TUNED_VS_DEFAULT = 1.15
TARGET_TUNED_VS_LLAMA = 1.5


def figures(run: bench.BenchRun) -> dict[str, dict]:
    out = {}
    for row in run.frame.to_dict("records"):
        out[str(int(row["load"]))] = {
            "output_tokens_per_s": round(row["output_tokens_per_s"], 2),
            "requests_per_s": round(row["requests_per_s"], 3),
            "ttft_p50_ms": round(row["ttft_p50_ms"], 1),
            "ttft_p95_ms": round(row["ttft_p95_ms"], 1),
            "requests_ok": int(row["requests_ok"]),
            "requests_errored": int(row["requests_errored"]),
        }
    return out


def median_figures(repeats: list[dict[str, dict]]) -> dict[str, dict]:
    """Per level and figure, the median over the repeats."""
    return {level: {key: round(statistics.median(r[level][key] for r in repeats), 3)
                    for key in repeats[0][level]}
            for level in repeats[0]}


def ratio(a: dict, b: dict, level: str) -> float | None:
    if level not in a or level not in b or not b[level]["output_tokens_per_s"]:
        return None
    return round(a[level]["output_tokens_per_s"] / b[level]["output_tokens_per_s"], 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--rounds", type=int, default=2,
                        help="requests per user per level (at least 4 requests per level)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="times each side runs, in turn (figures are medians)")
    parser.add_argument("--tuned", default=",".join(bench.CPU_TUNED),
                        help="comma-separated labels of bench.cpu_variants to combine "
                        "(default: module 5's tuned configuration, bench.cpu_tuned)")
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--runtime", default="local", choices=["auto", "podman", "local"])
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args()

    base = chat_server("cpu")
    by_label = {v.label: v for v in bench.cpu_variants(base)}
    wanted = [t.strip() for t in args.tuned.split(",") if t.strip() and t.strip() != "default"]
    unknown = [t for t in wanted if t not in by_label]
    if unknown:
        parser.error(f"unknown --tuned labels {unknown}; choose from {sorted(by_label)}")
    tuned = bench.combine_changes(base, [by_label[t] for t in wanted])
    load = bench.concurrent(args.streams,
                            max_requests=[max(4, s * args.rounds) for s in args.streams],
                            prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens)
    load_before = os.getloadavg()
    began = time.monotonic()
    runs: dict[str, list[dict]] = {}
    commands: dict[str, str] = {}
    for repeat in range(args.repeats):
        for variant in (by_label["default"], tuned) if wanted else (by_label["default"],):
            run = bench.run_variant(variant, load, runtime=args.runtime, progress=False)
            runs.setdefault(variant.label, []).append(figures(run))
            commands[variant.label] = variant.change
        if peer.available():
            with peer.start_llama_server(parallel=16, threads=usable_cores()) as llama:
                run = bench.run_benchmark(llama.target(label="llama-server"), load,
                                          progress=False)
                runs.setdefault("llama-server", []).append(figures(run))
                commands["llama-server"] = " ".join(Path(a).name if a.startswith("/") else a
                                                    for a in llama.command())
        print(f"repeat {repeat + 1} done", file=sys.stderr, flush=True)
    if not wanted:  # --tuned default: the tuned configuration is the default itself
        runs["tuned"] = runs["default"]
        commands["tuned"] = "the default (--tuned default)"
    results = {label: median_figures(repeats) for label, repeats in runs.items()}
    d, t, ll = results["default"], results["tuned"], results.get("llama-server", {})
    per_repeat = {
        "tuned_vs_default_at_16": [ratio(tr, dr, "16") for tr, dr in
                                   zip(runs["tuned"], runs["default"], strict=True)],
        "tuned_vs_llama_at_16": [ratio(tr, lr, "16") for tr, lr in
                                 zip(runs["tuned"], runs.get("llama-server", []), strict=False)],
    }
    ratios = {
        "tuned_vs_default_at_16": ratio(t, d, "16"),
        "tuned_vs_llama_at_16": ratio(t, ll, "16"),
        "default_vs_llama_at_16": ratio(d, ll, "16"),
        "tuned_vs_llama_at_1": ratio(t, ll, "1"),
        "default_vs_llama_at_1": ratio(d, ll, "1"),
        "tuned_vs_default_at_1": ratio(t, d, "1"),
    }
    met = {
        "tuned_vs_default_at_16": (ratios["tuned_vs_default_at_16"] or 0)
        >= TARGET_TUNED_VS_DEFAULT,
        "tuned_vs_llama_at_16": (None if not ll else
                                 (ratios["tuned_vs_llama_at_16"] or 0) >= TARGET_TUNED_VS_LLAMA),
    }
    report = {
        "benchmark": "throughput",
        "machine": {"cpus": os.cpu_count(), "usable_cores": usable_cores(),
                    "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "load": load.describe(),
        "configs": commands,
        "tuned_changes": wanted,
        "llama_server": {"installed": peer.available(), "version": peer.version(),
                         "weights": "Q4_1 GGUF (vLLM: bf16)"},
        "runtime": args.runtime,
        "repeats": args.repeats,
        "results": results,
        "each_repeat": runs,
        "ratios": ratios,
        "ratios_per_repeat": per_repeat,
        "targets": {"tuned_vs_default_at_16_min": TARGET_TUNED_VS_DEFAULT,
                    "tuned_vs_llama_at_16_min": TARGET_TUNED_VS_LLAMA},
        "met": met,
        "seconds": round(time.monotonic() - began, 1),
    }
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
