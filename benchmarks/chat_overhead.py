"""What ChatSession costs over the raw openai client: time to first token and decode tokens/s.

    .venv/bin/python benchmarks/chat_overhead.py [--runs 20] [--max-tokens 64] [--keep]
                                                 [--out benchmarks/results/chat_overhead.json]

Against one local server ("bench-chat", reused if running, else started on a free port and
stopped at the end unless --keep), both paths send the same request: the same messages,
temperature 0, a fixed max_tokens, stream=True with include_usage. Runs alternate (ABAB...,
the first of each pair swapping) after a warm-up, and both are timed by the same code: from
the call to the first non-empty text piece (TTFT), and (completion tokens - 1) over first to
last piece (decode tokens/s), with the token count from the server's usage chunk.

Targets: median TTFT ratio (session / raw) <= 1.05, median tokens/s ratio >= 0.97 (ratios of
the medians; "paired" adds the medians of the per-pair ratios). Prints JSON. On a shared 2-core
machine the run-to-run noise is a few percent: compare several runs before concluding.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from publish import publish

from lab_helpers import server
from lab_helpers.chat import ChatSession
from lab_helpers.server.config import chat_server

NAME = "bench-chat"
SYSTEM = "You are a helpful assistant for ACME Corp customers."
QUESTION = "Describe three products ACME Corp sells and who buys them."
TARGET_TTFT_RATIO = 1.05
TARGET_TPS_RATIO = 0.97


def get_server() -> tuple[server.Server, bool]:
    """(server, started_here): reuse a running bench-chat, else start one on a free port."""
    try:
        return server.get(NAME), False
    except Exception:  # noqa: BLE001 - not running: start it
        config = chat_server("cpu", name=NAME, port=server.free_port())
        return server.start(config, runtime="local"), True


def timed(pieces: Callable[[], Iterator[str]], completion_tokens: Callable[[], int]) -> dict:
    """Time one streamed answer the same way for both paths."""
    began = time.perf_counter()
    first = last = None
    for piece in pieces():
        if piece:
            now = time.perf_counter()
            first = first if first is not None else now
            last = now
    tokens = completion_tokens()
    assert first is not None and last is not None, "no text was streamed"
    decode = last - first
    return {
        "ttft_s": first - began,
        "tokens_per_s": (tokens - 1) / decode if tokens > 1 and decode > 0 else None,
        "completion_tokens": tokens,
    }


class Raw:
    """The raw openai client: one client, reused like the session reuses its own."""

    def __init__(self, srv: server.Server, max_tokens: int) -> None:
        self.client = srv.client(max_retries=0)
        self.model = srv.model_name
        self.max_tokens = max_tokens
        self.usage_tokens = 0

    def pieces(self) -> Iterator[str]:
        stream = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": QUESTION}],
            temperature=0.0, top_p=1.0, max_tokens=self.max_tokens,
            stream=True, stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                self.usage_tokens = chunk.usage.completion_tokens
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    def run(self) -> dict:
        return timed(self.pieces, self.tokens)

    def tokens(self) -> int:
        return self.usage_tokens


class Session:
    """The same request through ChatSession (history cleared, so the messages are equal)."""

    def __init__(self, srv: server.Server, max_tokens: int) -> None:
        self.session = ChatSession(srv, system_prompt=SYSTEM, temperature=0.0, top_p=1.0,
                                   max_tokens=max_tokens)

    def pieces(self) -> Iterator[str]:
        self.session.clear()
        return self.session.send(QUESTION)

    def run(self) -> dict:
        return timed(self.pieces, self.tokens)

    def tokens(self) -> int:
        stats = self.session.last_stats
        assert stats is not None and stats.completion_tokens is not None
        return stats.completion_tokens


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs if r[key] is not None)


def measure(srv: server.Server, runs: int, warmup: int, max_tokens: int) -> dict:
    paths = {"raw": Raw(srv, max_tokens), "session": Session(srv, max_tokens)}
    for _ in range(warmup):
        for path in paths.values():
            path.run()
    results: dict[str, list[dict]] = {"raw": [], "session": []}
    for i in range(runs):
        order = ["raw", "session"] if i % 2 == 0 else ["session", "raw"]
        for name in order:
            results[name].append(paths[name].run())
    summary = {
        name: {
            "ttft_median_s": round(median(rs, "ttft_s"), 4),
            "tokens_per_s_median": round(median(rs, "tokens_per_s"), 2),
            "completion_tokens": sorted({r["completion_tokens"] for r in rs}),
        }
        for name, rs in results.items()
    }
    ttft_ratio = median(results["session"], "ttft_s") / median(results["raw"], "ttft_s")
    tps_ratio = (median(results["session"], "tokens_per_s")
                 / median(results["raw"], "tokens_per_s"))
    # Pairs ran back to back, so their ratio cancels slow drift of a shared machine.
    pairs = list(zip(results["session"], results["raw"], strict=True))
    paired = {
        "ttft_ratio_median": round(statistics.median(s["ttft_s"] / r["ttft_s"]
                                                     for s, r in pairs), 3),
        "tokens_per_s_ratio_median": round(statistics.median(
            s["tokens_per_s"] / r["tokens_per_s"] for s, r in pairs
            if s["tokens_per_s"] and r["tokens_per_s"]), 3),
    }
    return {
        **summary,
        "ttft_ratio": round(ttft_ratio, 3),
        "tokens_per_s_ratio": round(tps_ratio, 3),
        "paired": paired,
        "ttft_target_met": ttft_ratio <= TARGET_TTFT_RATIO,
        "tokens_per_s_target_met": tps_ratio >= TARGET_TPS_RATIO,
        "runs": {name: [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                        for r in rs] for name, rs in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per path")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per path first")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="leave bench-chat running")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    srv, started = get_server()
    try:
        result = measure(srv, args.runs, args.warmup, args.max_tokens)
    finally:
        if started and not args.keep:
            srv.stop()
    report = {
        "benchmark": "chat_overhead",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "server": {"name": NAME, "model": srv.model_name, "runtime": srv.runtime.kind,
                   "started_here": started},
        "request": {"temperature": 0.0, "max_tokens": args.max_tokens, "runs": args.runs,
                    "warmup": args.warmup},
        "targets": {"ttft_ratio_max": TARGET_TTFT_RATIO,
                    "tokens_per_s_ratio_min": TARGET_TPS_RATIO},
        **result,
    }
    publish(report, args.out)


if __name__ == "__main__":
    main()
