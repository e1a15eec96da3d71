"""Tool calling on the lab's chat server: call quality per tool_choice, and one loop's latency.

    .venv/bin/python benchmarks/tools.py [--loops 5] [--workers 6]
                                         [--out benchmarks/results/tools.json]

Uses the running "chat" lab server (started with chat_server("cpu") if none runs) and a
support database of its own (in a temporary directory, so the learner's data is untouched).

1. Quality: the lab's labelled support requests (lab_helpers/data/tool_requests.json), first
   turn only, nothing executed, under `auto` and `required` in the same run: the share of
   valid calls (a real tool, arguments that pass the strict schema), of the right tool, and of
   arguments that match the request.
2. Latency: "Where is my order ORD-78432?" through the full loop (required, then auto) `--loops`
   times: the loop's wall time, split into model requests and the executor's own time
   (validation + SQLite), which is the lab's overhead.

Targets: `required` gives a valid call for >= 95% of requests, and more often than `auto`; the
executor's median time per loop is <= 5% of the loop. Prints JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from publish import publish

from lab_helpers import server
from lab_helpers.server.config import chat_server
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all
from lab_helpers.tools.evaluate import evaluate, rates, support_requests

TARGET_REQUIRED_VALID = 0.95
TARGET_EXECUTOR_SHARE = 0.05
QUESTION = "Where is my order ORD-78432?"


def get_server() -> server.Server:
    try:
        return server.get("chat")
    except Exception:  # noqa: BLE001 - not running: start (or reuse) the profile's server
        return server.start(chat_server("cpu"))


def loop_latency(loop: ToolLoop, runs: int) -> dict:
    rows = []
    for _ in range(runs):
        transcript = loop.run(QUESTION, tool_choice="required")
        tools_s = sum(r.seconds for r in transcript.results)
        model_s = sum(r.seconds for r in transcript.rounds)
        rows.append({"loop_s": transcript.seconds, "model_s": model_s, "tools_s": tools_s,
                     "rounds": len(transcript.rounds), "calls": len(transcript.calls)})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    return {"runs": runs, "median": med,
            "executor_share": med["tools_s"] / med["loop_s"] if med["loop_s"] else None,
            "all": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loops", type=int, default=5)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "tools.json")
    args = parser.parse_args()

    srv = get_server()
    with tempfile.TemporaryDirectory() as tmp:
        desk = SupportDesk(Path(tmp) / "acme.sqlite")
        loop = ToolLoop(srv, ToolExecutor(acme_registry(desk), decide=approve_all),
                        max_tokens=150)
        cases = support_requests()
        started = time.perf_counter()
        df = evaluate(loop, cases, ["auto", "required"], workers=args.workers)
        quality_s = time.perf_counter() - started
        table = rates(df)
        latency = loop_latency(loop, args.loops)

    auto, required = table.loc["auto"], table.loc["required"]
    result = {
        "benchmark": "tools",
        "server": {"name": srv.name, "runtime": srv.runtime.kind, "model": srv.model_name},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "requests_per_mode": len(cases),
        "quality": {mode: {k: float(v) for k, v in row.items()}
                    for mode, row in table.to_dict(orient="index").items()},
        "quality_wall_s": round(quality_s, 1),
        "loop_latency": latency,
        "targets": {
            "required_valid_call >= 0.95": {
                "value": float(required["valid_call"]),
                "met": bool(required["valid_call"] >= TARGET_REQUIRED_VALID)},
            "required_valid_call > auto_valid_call": {
                "value": [float(required["valid_call"]), float(auto["valid_call"])],
                "met": bool(required["valid_call"] > auto["valid_call"])},
            "executor_share_of_loop <= 0.05": {
                "value": latency["executor_share"],
                "met": latency["executor_share"] is not None
                and latency["executor_share"] <= TARGET_EXECUTOR_SHARE},
        },
    }
    publish(result, args.out)


if __name__ == "__main__":
    main()
