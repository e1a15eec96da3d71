"""Room mode's figures: requests and tokens per attendee, from the server's own /metrics.

The lab's launcher counts every attendee's requests (`lab_room_requests_total`) and the prompt
and completion tokens of answers that carry `usage` (`lab_room_tokens_total`), and shows who is
active now (`lab_room_requests_running`, `lab_room_last_request_timestamp_seconds`), labelled
with the attendee's name, never their key (lab_helpers/server/room_guard.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ..connect import QUICK_TIMEOUT_S
from .parse import _connect, parse_metrics

# An attendee whose last request came this recently is "active" in `room status`.
ACTIVE_WITHIN_S = 120.0


@dataclass(frozen=True)
class AttendeeUsage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    running: int = 0
    """Their requests running on the server now."""
    last_request: float | None = None
    """When their last request came (Unix time), None if never."""

    def activity(self, now: float | None = None) -> str:
        """'N running', 'active' (a request within ACTIVE_WITHIN_S), 'idle' or 'never'."""
        if self.running:
            return f"{self.running} running"
        if self.last_request is None:
            return "never"
        ago = (time.time() if now is None else now) - self.last_request
        return "active" if ago <= ACTIVE_WITHIN_S else "idle"


# family name -> field of AttendeeUsage (tokens: "<kind>_tokens")
_FIELDS = {"lab_room_requests": "requests", "lab_room_requests_running": "running",
           "lab_room_last_request_timestamp_seconds": "last_request"}


def attendee_usage(metrics_text: str) -> dict[str, AttendeeUsage]:
    """name -> what that attendee used since the server started (only attendees who sent)."""
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in (*_FIELDS, "lab_room_tokens"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a counter's creation time, not a count
            counts = found.setdefault(sample.labels["attendee"], {})
            field = _FIELDS.get(family.name) or f"{sample.labels['kind']}_tokens"
            counts[field] = counts.get(field, 0) + sample.value
    return {name: AttendeeUsage(**{k: v if k == "last_request" else int(v)
                                   for k, v in counts.items()})
            for name, counts in sorted(found.items())}


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
        """One row per attendee: totals, requests since the sample before the last, and
        what they are doing now (`AttendeeUsage.activity`)."""
        import pandas as pd

        columns = ["now", "requests", "prompt_tokens", "completion_tokens",
                   "requests_since_last"]
        if not self.samples:
            return pd.DataFrame(columns=columns)
        last = self.samples[-1]
        before = self.samples[-2].usage if len(self.samples) > 1 else last.usage
        rows = {name: {"now": u.activity(last.time), "requests": u.requests,
                       "prompt_tokens": u.prompt_tokens,
                       "completion_tokens": u.completion_tokens,
                       "requests_since_last": u.requests - before.get(
                           name, AttendeeUsage()).requests}
                for name, u in last.usage.items()}
        return pd.DataFrame.from_dict(rows, orient="index", columns=columns) \
            .rename_axis("attendee")

    def load_history(self):
        """The server's load over time: requests running and waiting (all attendees)."""
        import pandas as pd

        return pd.DataFrame([{"time": pd.Timestamp(s.time, unit="s"),
                              "running": s.requests_running, "waiting": s.requests_waiting}
                             for s in self.samples], columns=["time", "running", "waiting"])

    def history(self):
        """Long table: time, attendee, requests, tokens (prompt + completion)."""
        import pandas as pd

        return pd.DataFrame([
            {"time": pd.Timestamp(s.time, unit="s"), "attendee": name,
             "requests": u.requests, "tokens": u.prompt_tokens + u.completion_tokens}
            for s in self.samples for name, u in s.usage.items()],
            columns=["time", "attendee", "requests", "tokens"])
