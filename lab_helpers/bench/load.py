"""What load a benchmark sends: the profile, its limits and the synthetic requests.

A `Load` is plain data that turns into GuideLLM 0.8's own argument models (profile, constraints,
data). Bad values are refused here, before a tokenizer is loaded or a request is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import LabError

ProfileKind = Literal["synchronous", "concurrent", "constant", "poisson", "sweep"]
PROFILES: tuple[str, ...] = ("synchronous", "concurrent", "constant", "poisson", "sweep")


class BenchConfigError(LabError, ValueError):
    """A benchmark load that cannot run as given; nothing was sent."""


def _bad(what: str, fix: str) -> BenchConfigError:
    return BenchConfigError(what, fix=fix)


@dataclass(frozen=True)
class Load:
    """One benchmark load. Use the helpers: `synchronous()`, `concurrent([1, 4])`,
    `constant([2.0])`, `poisson([2.0])`, `sweep(4)`.

    Limits apply to *each* level of the profile (GuideLLM's constraints): `max_requests` per
    concurrency level or rate, `max_seconds` per level, `max_error_rate` stops a level whose
    share of failed requests passes it (after GuideLLM's minimum of processed requests).
    """

    profile: ProfileKind = "concurrent"
    streams: tuple[int, ...] = ()
    """Concurrent streams per level (profile "concurrent")."""
    rates: tuple[float, ...] = ()
    """Requests per second per level (profiles "constant" and "poisson")."""
    sweep_size: int = 4
    """Levels of a sweep: synchronous, throughput, then constant rates between them."""
    max_requests: int | tuple[int, ...] | None = 16
    """Per level; a tuple gives each level its own count (e.g. one per stream)."""
    max_seconds: float | None = None
    max_error_rate: float | None = None
    prompt_tokens: int = 128
    output_tokens: int = 64
    max_concurrency: int | None = None
    """Cap on requests in flight for rate and sweep profiles (GuideLLM's default when None)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "streams", tuple(int(s) for s in self.streams))
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        if isinstance(self.max_requests, list | tuple):
            object.__setattr__(self, "max_requests", tuple(int(n) for n in self.max_requests))
        if self.profile not in PROFILES:
            raise _bad(f"Unknown profile {self.profile!r}.",
                       f"use one of {', '.join(PROFILES)}, e.g. bench.concurrent([1, 4])")
        if self.profile == "concurrent" and (not self.streams or min(self.streams) < 1):
            raise _bad("A concurrent load needs one or more stream counts >= 1.",
                       "pass them as a list: bench.concurrent([1, 4, 16])")
        if self.profile in ("constant", "poisson") and (not self.rates or min(self.rates) <= 0):
            raise _bad(f"A {self.profile} load needs one or more rates > 0 requests/s.",
                       f"pass them as a list: bench.{self.profile}([1.0, 2.0])")
        if self.profile == "sweep" and self.sweep_size < 2:
            raise _bad("A sweep needs at least 2 levels.", "bench.sweep(4)")
        if self.max_requests is None and self.max_seconds is None:
            raise _bad("A load without max_requests or max_seconds would never stop.",
                       "give a limit, e.g. bench.concurrent([4], max_requests=16)")
        counts = self.max_requests if isinstance(self.max_requests, tuple) else (
            () if self.max_requests is None else (self.max_requests,))
        if any(n < 1 for n in counts) or (self.max_requests is not None and not counts):
            raise _bad("max_requests must be >= 1.", "e.g. max_requests=16")
        if isinstance(self.max_requests, tuple) and len(counts) != self.levels:
            raise _bad(f"max_requests lists {len(counts)} counts for {self.levels} levels.",
                       "give one count per level, e.g. concurrent([1, 4], max_requests=[4, 8])")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise _bad("max_seconds must be > 0.", "e.g. max_seconds=30")
        if self.max_error_rate is not None and not 0 < self.max_error_rate < 1:
            raise _bad("max_error_rate is a share of requests, strictly between 0 and 1.",
                       "e.g. max_error_rate=0.05")
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise _bad("prompt_tokens and output_tokens must be >= 1.",
                       "e.g. prompt_tokens=128, output_tokens=64")

    # -- GuideLLM arguments ------------------------------------------------------------------

    @property
    def levels(self) -> int:
        """How many benchmarks GuideLLM will run for this load (one per level)."""
        if self.profile == "concurrent":
            return len(self.streams)
        if self.profile in ("constant", "poisson"):
            return len(self.rates)
        if self.profile == "sweep":
            return self.sweep_size
        return 1

    def profile_args(self) -> dict[str, Any]:
        if self.profile == "concurrent":
            return {"kind": "concurrent", "streams": list(self.streams)}
        if self.profile in ("constant", "poisson"):
            args: dict[str, Any] = {"kind": self.profile, "rate": list(self.rates)}
        elif self.profile == "sweep":
            args = {"kind": "sweep", "sweep_size": self.sweep_size}
        else:
            return {"kind": "synchronous"}
        if self.max_concurrency is not None:
            args["max_concurrency"] = self.max_concurrency
        return args

    def constraint_args(self) -> list[dict[str, Any]]:
        constraints: list[dict[str, Any]] = []
        if self.max_requests is not None:
            count = (list(self.max_requests) if isinstance(self.max_requests, tuple)
                     else self.max_requests)
            constraints.append({"kind": "max_requests", "count": count})
        if self.max_seconds is not None:
            constraints.append({"kind": "max_duration", "seconds": self.max_seconds})
        if self.max_error_rate is not None:
            constraints.append({"kind": "max_global_error_rate", "rate": self.max_error_rate})
        return constraints

    def data_args(self) -> list[dict[str, Any]]:
        return [{"kind": "synthetic_text", "prompt_tokens": self.prompt_tokens,
                 "output_tokens": self.output_tokens}]

    def describe(self) -> str:
        what = {"concurrent": f"concurrency {list(self.streams)}",
                "constant": f"constant rate {list(self.rates)} req/s",
                "poisson": f"Poisson rate {list(self.rates)} req/s",
                "sweep": f"sweep of {self.sweep_size} levels",
                "synchronous": "one request at a time"}[self.profile]
        counts = (list(self.max_requests) if isinstance(self.max_requests, tuple)
                  else self.max_requests)
        limits = [f"{counts} requests" if counts else "",
                  f"{self.max_seconds:g} s" if self.max_seconds else "",
                  f"stop above {self.max_error_rate:.0%} errors" if self.max_error_rate else ""]
        limit = ", ".join(x for x in limits if x)
        return (f"{what}; per level: {limit}; {self.prompt_tokens} prompt / "
                f"{self.output_tokens} output tokens")


def synchronous(**limits: Any) -> Load:
    """One request at a time: the single-user latency."""
    return Load(profile="synchronous", **limits)


def concurrent(streams: list[int] | tuple[int, ...] | int, **limits: Any) -> Load:
    """N users, each sending the next request as soon as the last one answered."""
    if isinstance(streams, int):
        streams = [streams]
    return Load(profile="concurrent", streams=tuple(streams), **limits)


def constant(rates: list[float] | tuple[float, ...] | float, **limits: Any) -> Load:
    """Requests arriving at fixed intervals, whatever the server's speed (open loop)."""
    if isinstance(rates, int | float):
        rates = [rates]
    return Load(profile="constant", rates=tuple(rates), **limits)


def poisson(rates: list[float] | tuple[float, ...] | float, **limits: Any) -> Load:
    """Requests arriving at random (Poisson) times with the given mean rate (open loop)."""
    if isinstance(rates, int | float):
        rates = [rates]
    return Load(profile="poisson", rates=tuple(rates), **limits)


def sweep(levels: int = 4, **limits: Any) -> Load:
    """GuideLLM's sweep: synchronous, then full throughput, then constant rates between."""
    return Load(profile="sweep", sweep_size=levels, **limits)
