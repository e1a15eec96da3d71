"""Tuning: one server setting changed at a time, each on a fresh server, under the same load.

    variants = bench.cpu_variants(chat_server("cpu"))       # the lab default first
    runs = bench.compare(variants[:3], bench.concurrent([16], max_requests=32))
    bench.comparison_table(runs, at_load=16)

The baseline is the lab's default exactly as `chat_server(profile)` builds it (module 1); each
variant is that config with *one* change, measured on a fresh server of its own (`bench.fresh`:
`run_variant`, `compare`), one at a time: a server under load beside another would share the
cores and spoil both measurements.

`cpu_tuned(base)` is the CPU profile's tuned configuration: int8 weights (the bundled
`smollm2-135m-instruct-w8a8`) with torch.compile, the two changes that together beat the default
by more than the noise on this lab's CPU (`benchmarks/tuning.py --rounds`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..models import INT8_CHAT_MODEL
from ..paths import models_dir
from ..server.config import COMPILE_IMAGE, CPU_IMAGE, ServerConfig
from .report import combine
from .run import BenchRun

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Variant:
    """A server configuration under test, and the one change that makes it (in words)."""

    label: str
    change: str
    config: ServerConfig

    @property
    def server_name(self) -> str:
        return "bench-" + re.sub(r"[^a-z0-9.-]+", "-", self.label.lower())[:34]


def _one_change(base: ServerConfig, label: str, change: str, **fields: object) -> Variant:
    return Variant(label, change, base.replace(**fields))


def cpu_variants(base: ServerConfig) -> list[Variant]:
    """The lab default, then single changes worth trying on a CPU (first the cheap ones).

    The compiled variant needs a C++ compiler where vLLM runs: the local runtime (g++ on the
    host) or the `--compiler` image (`vllm-lab build-image --compiler`), which it asks for when
    the base uses the default CPU image. `int8-weights` serves the bundled int8 copy of the
    model under the base's served name (prepared by `run_variant` when missing).
    """
    env = dict(base.env)
    compiler_image = COMPILE_IMAGE if base.image == CPU_IMAGE else base.image
    return [
        Variant("default", "the lab's default (module 1): chat_server('cpu')", base),
        _one_change(base, "reserve-1-core",
                    "VLLM_CPU_NUM_OF_RESERVED_CPU=1: vLLM's own default, one core kept for "
                    "the scheduler instead of computing",
                    env={**env, "VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}),
        _one_change(base, "float32",
                    "--dtype float32: full-precision weights and arithmetic instead of bf16",
                    dtype="float32"),
        _one_change(base, "worker-process",
                    "the model in a worker process of its own (vLLM's multiprocess executor, "
                    "its CPU default) instead of inside the engine core process",
                    worker_process=True),
        _one_change(base, "max-num-seqs-4",
                    "--max-num-seqs 4: at most 4 requests decoded together",
                    extra_args=(*base.extra_args, "--max-num-seqs", "4")),
        _one_change(base, "stream-interval-8",
                    "--stream-interval 8: the API server streams tokens in groups of 8 (the "
                    "first one at once), so 8x fewer HTTP events share the cores with compute",
                    extra_args=(*base.extra_args, "--stream-interval", "8")),
        _one_change(base, "no-prefix-caching",
                    "--no-enable-prefix-caching: no lookups for shared prompt prefixes",
                    extra_args=(*base.extra_args, "--no-enable-prefix-caching")),
        _one_change(base, "batched-tokens-512",
                    "--max-num-batched-tokens 512: smaller prefill chunks per step",
                    extra_args=(*base.extra_args, "--max-num-batched-tokens", "512")),
        _one_change(base, "int8-weights",
                    "int8 weights in the linear layers (W8A8: one scale per output channel, "
                    "activations quantised per token) instead of bf16",
                    model=str(models_dir() / INT8_CHAT_MODEL),
                    served_model_name=base.model_name),
        _one_change(base, "compiled",
                    "enforce_eager=False: torch.compile (90-100 s start instead of ~20 s)",
                    enforce_eager=False, image=compiler_image),
    ]


# The CPU profile's tuned configuration: each change measured alone first (cpu_variants).
CPU_TUNED = ("int8-weights", "compiled")


def cpu_tuned(base: ServerConfig) -> Variant:
    """The CPU profile's tuned configuration: the changes in CPU_TUNED, together."""
    by_label = {v.label: v for v in cpu_variants(base)}
    return combine_changes(base, [by_label[label] for label in CPU_TUNED], label="tuned")


def repeat(variant: Variant, label: str = "default-again") -> Variant:
    """The same config once more on another fresh server: the run-to-run noise."""
    return Variant(label, f"{variant.label} again, on a second fresh server", variant.config)


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = {w for line in cpuinfo.splitlines() if line.startswith("flags")
             for w in line.partition(":")[2].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def gpu_variants(base: ServerConfig) -> list[Variant]:
    """The GPU profile's knobs, one at a time (not runnable here: no GPU)."""
    return [
        Variant("default", "the lab's default: chat_server('gpu')", base),
        _one_change(base, "mem-0.95", "--gpu-memory-utilization 0.95: more KV cache, more "
                    "concurrent sequences", gpu_memory_utilization=0.95),
        _one_change(base, "max-len-8192", "--max-model-len 8192: a shorter context leaves "
                    "room for more sequences", max_model_len=8192),
        _one_change(base, "tp-2", "--tensor-parallel-size 2: the model split over two GPUs",
                    extra_args=(*base.extra_args, "--tensor-parallel-size", "2")),
    ]


def combine_changes(base: ServerConfig, variants: list[Variant], label: str = "tuned"
                    ) -> Variant:
    """One config with the changes of several variants (each measured alone first)."""
    import dataclasses

    config, changes = base, []
    for v in variants:
        extra = v.config.extra_args[len(base.extra_args):]
        env = {k: val for k, val in v.config.env.items() if base.env.get(k) != val}
        fields = {f.name: getattr(v.config, f.name) for f in dataclasses.fields(base)
                  if f.name not in ("extra_args", "env")
                  and getattr(v.config, f.name) != getattr(base, f.name)}
        config = config.replace(extra_args=(*config.extra_args, *extra),
                                env={**config.env, **env}, **fields)
        changes.append(v.label)
    return Variant(label, " + ".join(changes), config)


def comparison_table(runs: list[BenchRun], at_load: float | None = None,
                     baseline: str | None = None) -> pd.DataFrame:
    """One row per run at one load (the highest by default), with ratios to the baseline."""
    frame = combine(*(r.frame for r in runs))
    if at_load is None:
        at_load = float(frame["load"].max())
    rows = frame[frame["load"] == at_load].set_index("run")
    table = rows[["output_tokens_per_s", "requests_per_s", "ttft_p50_ms", "ttft_p95_ms",
                  "itl_p50_ms", "latency_p95_s", "requests_errored"]].copy()
    base = baseline or runs[0].label
    if base in table.index:
        table["throughput_vs_baseline"] = (table["output_tokens_per_s"]
                                           / table.loc[base, "output_tokens_per_s"])
    return table


def noise(table: pd.DataFrame, baseline: str = "default", again: str = "default-again"
          ) -> float:
    """Relative difference in output tokens/s between two fresh servers of the same config."""
    first = table.loc[baseline, "output_tokens_per_s"]
    return float(abs(table.loc[again, "output_tokens_per_s"] - first) / first)


def winner(table: pd.DataFrame, *, baseline: str = "default", margin: float = 0.0) -> str:
    """The run with the most output tokens/s and no errors, if it beats the baseline by more
    than `margin` (e.g. the measured `noise`); otherwise the baseline: a change that gains
    less than the noise has not been shown to gain anything."""
    ok = table[table["requests_errored"] == 0]
    best = str((ok if len(ok) else table)["output_tokens_per_s"].idxmax())
    if best != baseline and baseline in table.index:
        gain = table.loc[best, "output_tokens_per_s"] / table.loc[baseline, "output_tokens_per_s"]
        if gain - 1 <= margin:
            return baseline
    return best
