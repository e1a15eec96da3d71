"""Tool calling on the lab's chat server: call quality per tool_choice and setup; loop latency.

    .venv/bin/python benchmarks/tools.py [--loops 5] [--workers 6] [--modes auto,required]
                                         [--setups a,b,...] [--out benchmarks/results/tools.json]

The setups alone, beside `required` on the same 22 requests (what tools_setups.json holds):

    .venv/bin/python benchmarks/tools.py --modes required --loops 0 \
        --out benchmarks/results/tools_setups.json

Uses the running "chat" lab server (started with chat_server("cpu") if none runs) and a
support database of its own (in a temporary directory, so the learner's data is untouched).

1. Quality: the lab's labelled support requests (lab_helpers/data/tool_requests.json), first
   turn only, nothing executed, under `auto` and `required` in the same run: the share of
   valid calls (a real tool, arguments that pass the strict schema), of the right tool, and of
   arguments that match the request.
   Then the same requests under the setups of `lab_helpers.tools.extract` (the tools narrowed
   to what the message says: ids, e-mails and phones as enums of its spans, free text as one
   of its phrases; tools it cannot fill left out), each with the same scoring:
   `narrowed` (one `required` round), `narrowed_described` (+ tool descriptions written for the
   model), `router` (a structured-output `choice` over the tool names, then a named
   tool_choice), `per_field` (the router, then each argument the message offers several
   values for chosen in a `choice` request of its own; the call is assembled from the
   answers), `few_shot` (narrowed_described with worked examples in the system prompt:
   `extract.FEW_SHOT`, none of them among the scored requests), `router_few_shot` (the router
   with the examples in its prompt too). `tool_choices` counts the requests where more than
   one tool stays on offer (the model's choice; on the others the narrowing decided the tool).
2. Latency: "Where is my order ORD-78432?" through the full loop (required, then auto) `--loops`
   times: the loop's wall time, split into model requests and the executor's own time
   (validation + SQLite), which is the lab's overhead.

Targets: `required` gives a valid call for >= 95% of requests, and more often than `auto`; the
best setup's arguments match for >= 60% of the requests (issue 19); the executor's median
time per loop is <= 5% of the loop. Prints JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from publish import publish

from lab_helpers import server
from lab_helpers.server.config import chat_server
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all
from lab_helpers.tools.evaluate import evaluate, rates, support_requests
from lab_helpers.tools.extract import FOR_THE_MODEL, Setup, for_message

TARGET_REQUIRED_VALID = 0.95
TARGET_ARGS_MATCH = 0.6
SETUPS = {
    "narrowed": Setup("narrowed"),
    "narrowed_described": Setup("narrowed_described", FOR_THE_MODEL),
    "router": Setup("router", FOR_THE_MODEL, router=True),
    "per_field": Setup("per_field", FOR_THE_MODEL, per_field=True),
    "few_shot": Setup("few_shot", FOR_THE_MODEL, few_shot=True),
    "router_few_shot": Setup("router_few_shot", FOR_THE_MODEL, router=True, few_shot=True),
}
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
    parser.add_argument("--modes", default="auto,required",
                        help="tool_choice modes to score, comma-separated")
    parser.add_argument("--setups", default=",".join(SETUPS),
                        help=f"comma-separated, of: {', '.join(SETUPS)} (empty: none)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "tools.json")
    args = parser.parse_args()
    setups = [SETUPS[name] for name in args.setups.split(",") if name]

    srv = get_server()
    with tempfile.TemporaryDirectory() as tmp:
        desk = SupportDesk(Path(tmp) / "acme.sqlite")
        loop = ToolLoop(srv, ToolExecutor(acme_registry(desk), decide=approve_all),
                        max_tokens=150)
        cases = support_requests()
        started = time.perf_counter()
        frames = []
        # the modes, then the setups; the file is written after each (a long run on a busy
        # machine keeps what it measured)
        for choice in [*(m for m in args.modes.split(",") if m), *setups]:
            frames.append(evaluate(loop, cases, [choice], workers=args.workers))
            df = pd.concat(frames, ignore_index=True)
            publish(report(srv, loop, cases, df, time.perf_counter() - started, None),
                    args.out)
        latency = loop_latency(loop, args.loops) if args.loops > 0 else None
        if latency is not None:
            publish(report(srv, loop, cases, df, time.perf_counter() - started, latency),
                    args.out)


def report(srv: server.Server, loop: ToolLoop, cases: list, df: pd.DataFrame,
           quality_s: float, latency: dict | None) -> dict:
    """The JSON the benchmark publishes (rates per mode, the calls, the targets)."""
    table = rates(df)
    choosing = [c.request for c in cases if len(for_message(loop.registry, c.request)) > 1]
    chosen = df[df["request"].isin(choosing)].groupby("mode", sort=False)["right_tool"]
    best = table["args_match"].idxmax()
    targets: dict[str, dict] = {"best args_match >= 0.6": {
        "value": [best, float(table.loc[best, "args_match"])],
        "met": bool(table.loc[best, "args_match"] >= TARGET_ARGS_MATCH)}}
    if "required" in table.index:
        required = table.loc["required"]
        targets["required_valid_call >= 0.95"] = {
            "value": float(required["valid_call"]),
            "met": bool(required["valid_call"] >= TARGET_REQUIRED_VALID)}
        if "auto" in table.index:
            auto = table.loc["auto"]
            targets["required_valid_call > auto_valid_call"] = {
                "value": [float(required["valid_call"]), float(auto["valid_call"])],
                "met": bool(required["valid_call"] > auto["valid_call"])}
    if latency is not None:
        share = latency["executor_share"]
        targets["executor_share_of_loop <= 0.05"] = {
            "value": share, "met": share is not None and share <= TARGET_EXECUTOR_SHARE}
    return {
        "benchmark": "tools",
        "server": {"name": srv.name, "runtime": srv.runtime.kind, "model": srv.model_name},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "requests_per_mode": len(cases),
        "quality": {mode: {k: float(v) for k, v in row.items()}
                    for mode, row in table.to_dict(orient="index").items()},
        "quality_wall_s": round(quality_s, 1),
        "tool_choices": {"requests": len(choosing),
                         "right_tool_when_the_model_chose": {
                             mode: round(float(v), 3) for mode, v in chosen.mean().items()}},
        "calls": df[["mode", "request", "tool", "arguments", "valid", "right_tool",
                     "args_match"]].to_dict(orient="records"),
        "loop_latency": latency,
        "targets": targets,
    }


if __name__ == "__main__":
    main()
