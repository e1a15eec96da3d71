"""Service-level objectives: pass/fail per benchmark, the highest load that meets them, and how
many servers a target rate needs.

    table = bench.verdicts(run.frame)             # one row per level, a column per target
    cap = bench.capacity(run.frame)               # best level meeting the latency targets
    bench.servers_needed(cap, 50)                 # servers like this one for 50 requests/s

The verdicts read GuideLLM's own percentiles from the tidy table (report.py). ACME's targets
are p95 TTFT < 500 ms, p95 end-to-end < 3 s, and >= 10 requests/s. Latency is a property of
one server at one load; throughput can be bought with more servers. So capacity planning takes
the highest throughput among the levels that meet the *latency* targets without errors, and
divides the wanted rate by it. No level meeting them means no number of such servers will.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SLO:
    """Targets for one deployment; `ACME` holds the module's."""

    ttft_p95_ms: float = 500.0
    latency_p95_s: float = 3.0
    min_requests_per_s: float = 10.0
    max_error_rate: float = 0.0

    def describe(self) -> str:
        return (f"p95 TTFT < {self.ttft_p95_ms:g} ms, p95 end-to-end < {self.latency_p95_s:g} s, "
                f">= {self.min_requests_per_s:g} requests/s, errors <= {self.max_error_rate:.0%}")


ACME = SLO()


@dataclass(frozen=True)
class Capacity:
    """The best level of one run that meets the latency targets."""

    run: str
    benchmark: str
    load: float
    requests_per_s: float
    output_tokens_per_s: float


def verdicts(frame: pd.DataFrame, slo: SLO = ACME) -> pd.DataFrame:
    """A pass/fail table: one row per benchmark, one boolean column per target."""
    table = frame[["run", "benchmark", "load", "ttft_p95_ms", "latency_p95_s",
                   "requests_per_s", "error_rate"]].copy()
    table["ttft_ok"] = table["ttft_p95_ms"] < slo.ttft_p95_ms
    table["latency_ok"] = table["latency_p95_s"] < slo.latency_p95_s
    table["throughput_ok"] = table["requests_per_s"] >= slo.min_requests_per_s
    table["errors_ok"] = table["error_rate"] <= slo.max_error_rate
    table["meets_latency"] = table["ttft_ok"] & table["latency_ok"] & table["errors_ok"]
    table["meets_all"] = table["meets_latency"] & table["throughput_ok"]
    return table


def capacity(frame: pd.DataFrame, slo: SLO = ACME, run: str | None = None) -> Capacity | None:
    """The level with the most requests/s that still meets the latency targets (None: none)."""
    table = verdicts(frame, slo).join(frame[["output_tokens_per_s"]])
    if run is not None:
        table = table[table["run"] == run]
    ok = table[table["meets_latency"]]
    if ok.empty:
        return None
    best = ok.loc[ok["requests_per_s"].idxmax()]
    return Capacity(run=str(best["run"]), benchmark=str(best["benchmark"]),
                    load=float(best["load"]), requests_per_s=float(best["requests_per_s"]),
                    output_tokens_per_s=float(best["output_tokens_per_s"]))


def servers_needed(cap: Capacity | None, requests_per_s: float) -> int | None:
    """Servers like the measured one for `requests_per_s` (None: the latency targets are never
    met, so adding servers cannot help)."""
    if requests_per_s <= 0:
        raise ValueError("requests_per_s must be > 0")
    if cap is None or cap.requests_per_s <= 0:
        return None
    return math.ceil(requests_per_s / cap.requests_per_s)


def plan(frame: pd.DataFrame, requests_per_s: float, slo: SLO = ACME) -> str:
    """The verdict in words, per run: what passes, what misses, and how many servers."""
    lines = []
    table = verdicts(frame, slo)
    for run, part in table.groupby("run", sort=False):
        cap = capacity(frame, slo, run=str(run))
        misses = [name for name, col in (("p95 TTFT", "ttft_ok"),
                                         ("p95 end-to-end", "latency_ok"),
                                         ("throughput", "throughput_ok"),
                                         ("errors", "errors_ok"))
                  if not part[col].any()]
        head = f"{run}: "
        if part["meets_all"].any():
            head += "meets every target at " + ", ".join(part[part["meets_all"]]["benchmark"])
        else:
            head += "misses " + (", ".join(misses) if misses else "the targets together") + \
                " at every level measured"
        if cap is None:
            lines.append(head + "; no level meets the latency targets, so more servers like "
                         "this one would not help.")
        else:
            n = servers_needed(cap, requests_per_s)
            lines.append(head + f"; best level within the latency targets: {cap.benchmark} at "
                         f"{cap.requests_per_s:.2f} requests/s per server, so "
                         f"{requests_per_s:g} requests/s need {n} such servers.")
    return "\n".join(lines)
