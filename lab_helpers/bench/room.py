"""How many attendees one server holds, and how many servers a room needs, from a saved run.

Module 5 saves every GuideLLM run under `<lab home>/benchmarks/<time>-<label>/summary.csv`
(the tidy table of report.py). Room mode reads the newest sweep of the room's own server (its
model and port, from GuideLLM's report: bench/saved.py) and takes module 5's capacity
(`bench.capacity`: the best level that met the latency targets, ACME's p95 TTFT and p95
end-to-end, without errors) as users at once. One
attendee counts as one concurrent user: the room's worst moment, when everyone runs the same
cell at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .saved import latest_sweep
from .slo import ACME, SLO, capacity


@dataclass(frozen=True)
class RoomCapacity:
    run: str
    source: Path
    attendees_per_server: int | None
    """Most concurrent users that met the latency targets; None when no level did."""
    slo: SLO = ACME

    def replicas(self, attendees: int) -> int | None:
        """Servers like the measured one for `attendees` (None: none would meet the targets)."""
        if not self.attendees_per_server:
            return None
        return max(1, math.ceil(attendees / self.attendees_per_server))

    def describe(self, attendees: int) -> str:
        where = f"measured in run {self.run!r} ({self.source})"
        if self.attendees_per_server is None:
            return (f"No level of the saved run met ACME's latency targets "
                    f"({self.slo.describe()}), {where}: more servers like it would not help; "
                    "a faster server (the gpu profile) would.")
        need = self.replicas(attendees)
        return (f"One server like this holds {self.attendees_per_server} attendees at once "
                f"within ACME's latency targets, {where}; {attendees} attendees need "
                f"{need} server{'s' if need != 1 else ''}.")


def room_capacity(results: Path | None = None, slo: SLO = ACME, *,
                  server: tuple[str, int | None] | None = None) -> RoomCapacity | None:
    """From the newest saved sweep of the lab's vLLM server (`bench.saved.latest_sweep`: not a
    tuning variant, not the llama.cpp peer), of `server` (model name, port) when given; None
    when there is none."""
    sweep = latest_sweep(results, server=server)
    if sweep is None:
        return None
    best = capacity(sweep.frame, slo)
    return RoomCapacity(run=str(sweep.frame["run"].iloc[0]), source=sweep.folder,
                        attendees_per_server=int(best.load) if best else None, slo=slo)
