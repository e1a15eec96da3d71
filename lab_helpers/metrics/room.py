"""Room mode's figures: requests and tokens per attendee, from the server's own /metrics.

The lab's launcher counts every attendee's requests (`lab_room_requests_total`) and the prompt
and completion tokens of answers that carry `usage` (`lab_room_tokens_total`), labelled with the
attendee's name, never their key (lab_helpers/server/keyguard.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ..connect import QUICK_TIMEOUT_S
from .parse import _connect, parse_metrics


@dataclass(frozen=True)
class AttendeeUsage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def attendee_usage(metrics_text: str) -> dict[str, AttendeeUsage]:
    """name -> what that attendee used since the server started (only attendees who sent)."""
    found: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in ("lab_room_requests", "lab_room_tokens"):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # the *_created samples
            counts = found.setdefault(sample.labels["attendee"], {})
            field = ("requests" if family.name == "lab_room_requests"
                     else f"{sample.labels['kind']}_tokens")
            counts[field] = counts.get(field, 0) + int(sample.value)
    return {name: AttendeeUsage(**counts) for name, counts in sorted(found.items())}


def room_usage(target, timeout: float = QUICK_TIMEOUT_S) -> dict[str, AttendeeUsage]:
    """GET the server's /metrics with its own key and read the attendees' counts."""
    text = _connect(target, None).get("/metrics", timeout=timeout).text
    return attendee_usage(text)


@dataclass(frozen=True)
class RoomSample:
    """One look at the room's server: every attendee's totals and the server's load."""

    time: float
    usage: dict[str, AttendeeUsage]
    requests_running: float
    requests_waiting: float
    kv_cache_usage_pct: float | None


class RoomMonitor:
    """Samples a room server's /metrics on request (the dashboard calls `sample()` on a timer).

    `table()` is the latest totals per attendee, with the requests since the previous sample
    (who is active now); `history()` the totals over time, for a plot.
    """

    def __init__(self, target, timeout: float = QUICK_TIMEOUT_S) -> None:
        self._conn = _connect(target, None)
        self._timeout = timeout
        self.samples: list[RoomSample] = []

    def sample(self) -> RoomSample:
        text = self._conn.get("/metrics", timeout=self._timeout).text
        models = list(parse_metrics(text).values())
        model = models[0] if models else None
        taken = RoomSample(
            time=time.time(), usage=attendee_usage(text),
            requests_running=model.requests_running if model else 0.0,
            requests_waiting=model.requests_waiting if model else 0.0,
            kv_cache_usage_pct=model.kv_cache_usage_pct if model else None)
        self.samples.append(taken)
        return taken

    def table(self):
        """One row per attendee: totals, and requests since the sample before the last."""
        import pandas as pd

        if not self.samples:
            return pd.DataFrame(columns=["requests", "prompt_tokens", "completion_tokens",
                                         "requests_since_last"])
        last = self.samples[-1].usage
        before = self.samples[-2].usage if len(self.samples) > 1 else last  # no interval yet
        rows = {name: {"requests": u.requests, "prompt_tokens": u.prompt_tokens,
                       "completion_tokens": u.completion_tokens,
                       "requests_since_last": u.requests - before.get(
                           name, AttendeeUsage()).requests}
                for name, u in last.items()}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("attendee")

    def history(self):
        """Long table: time, attendee, requests, tokens (prompt + completion)."""
        import pandas as pd

        return pd.DataFrame([
            {"time": pd.Timestamp(s.time, unit="s"), "attendee": name,
             "requests": u.requests, "tokens": u.prompt_tokens + u.completion_tokens}
            for s in self.samples for name, u in s.usage.items()],
            columns=["time", "attendee", "requests", "tokens"])
