"""Benchmark lab servers with GuideLLM 0.8: load, run, report, SLO verdicts, plots, tuning.

    from lab_helpers import bench
    target = bench.Target.from_server(srv)
    run = bench.run_benchmark(target, bench.concurrent([1, 4, 16], max_requests=32))
    run.frame                                   # tidy table read from GuideLLM's report
    bench.verdicts(run.frame)                   # ACME's targets, pass/fail per level
    bench.plot_throughput(run.frame)

`bench.guidellm_command(target, load, out_dir)` is the same run as a `guidellm run` command
line (its scenario file, owner-only, holds the key; `bench.scenario_text` shows it without).
Every figure comes from GuideLLM's own report (`run.report`, saved as `benchmarks.json` and
`benchmarks.csv`); this package only turns it into tables, verdicts and charts.

May import: `connect`, `server`, `models`, `errors`, `paths` (and GuideLLM, pandas and
matplotlib when a run, table or plot is asked for).
"""

from .command import guidellm_command, scenario_text
from .fresh import compare, run_variant, starts_at_once, stop_orphans
from .load import (
    BenchConfigError,
    Load,
    concurrent,
    constant,
    poisson,
    sweep,
    synchronous,
)
from .plots import (
    plot_comparison,
    plot_distributions,
    plot_latency,
    plot_latency_throughput,
    plot_throughput,
    plot_with_metrics,
)
from .report import combine, distributions, level_times, load_report, report_frame
from .room import RoomCapacity, room_capacity
from .run import BenchError, BenchRun, Target, check_target, run_benchmark
from .slo import ACME, SLO, Capacity, capacity, plan, servers_needed, verdicts
from .tuning import (
    CPU_TUNED,
    Variant,
    combine_changes,
    comparison_table,
    cpu_tuned,
    cpu_variants,
    gpu_variants,
    native_bf16,
    noise,
    repeat,
    winner,
)

__all__ = [
    "ACME", "CPU_TUNED", "SLO", "RoomCapacity", "room_capacity", "BenchConfigError",
    "BenchError", "BenchRun", "Capacity",
    "Load", "Target", "Variant", "capacity", "check_target", "combine", "combine_changes",
    "compare", "comparison_table", "concurrent", "constant", "cpu_tuned", "cpu_variants",
    "distributions", "gpu_variants", "guidellm_command", "level_times", "load_report",
    "native_bf16", "noise", "plan", "plot_comparison", "plot_distributions", "plot_latency",
    "plot_latency_throughput", "plot_throughput", "plot_with_metrics", "poisson", "repeat",
    "report_frame", "run_benchmark", "run_variant", "scenario_text", "servers_needed",
    "starts_at_once",
    "stop_orphans", "sweep", "synchronous", "verdicts", "winner",
]
