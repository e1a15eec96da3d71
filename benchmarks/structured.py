"""What a JSON-schema constraint costs, and what it buys: latency and valid rates, one run.

    .venv/bin/python benchmarks/structured.py [--messages 24] [--max-tokens 160] [--warmup 2]
                                              [--timeout 600] [--out FILE.json]

Against the lab's chat server (reused if it runs, else started like a notebook starts it), every
customer message of lab_helpers/data/support_messages.json becomes a ticket three ways, with the
same system prompt, the same user message, temperature 0 and the same max_tokens:

- `unconstrained`: the ticket asked for in words only;
- `response_format`: the ticket schema in `response_format` (vLLM's JSON grammar, which allows
  any whitespace between tokens);
- `compact`: the same schema as a one-line JSON grammar (`json_schema(..., compact=True)`).

Requests go one at a time, the order of the three rotating per message, after a warm-up (the
first request with a new grammar compiles it). Latency is the whole request; since the sides
write different numbers of tokens, the per-token latency (latency / completion tokens) is
reported too, and the ratios are of medians. Every answer is checked against the schema.

Target: each constrained side 100% schema-valid. The latency overhead has no target: it is
reported as measured. The CPU is shared with other work on a 2-core machine, so absolute times
are noisy; the ratios come from one interleaved run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

from publish import publish

from lab_helpers import server, structured
from lab_helpers.server.config import chat_server
from lab_helpers.structured import StructuredClient
from lab_helpers.structured.presets import (
    TICKET_SCHEMA,
    TICKET_SYSTEM_PROMPT,
    support_messages,
    ticket_prompt,
)

TARGET_VALID_RATE = 100.0
SIDES = ("unconstrained", "response_format", "compact")


def constraints() -> dict[str, structured.Constraint | None]:
    return {
        "unconstrained": None,
        "response_format": structured.json_schema(TICKET_SCHEMA, name="support_ticket"),
        "compact": structured.json_schema(TICKET_SCHEMA, name="support_ticket", compact=True),
    }


def measure(gen: StructuredClient, count: int, warmup: int) -> dict:
    sides = constraints()
    check = sides["response_format"]
    prompts = [ticket_prompt(m.text) for m in support_messages()[:count]]
    for prompt in prompts[:warmup]:
        for constraint in sides.values():
            gen.run(prompt, constraint, check=check, system_prompt=TICKET_SYSTEM_PROMPT)
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    for i, prompt in enumerate(prompts):
        order = SIDES[i % 3:] + SIDES[:i % 3]
        for side in order:
            result = gen.run(prompt, sides[side], check=check, system_prompt=TICKET_SYSTEM_PROMPT)
            assert result.verdict is not None
            runs[side].append({
                "latency_s": round(result.latency_s, 4),
                "completion_tokens": result.completion_tokens,
                "finish_reason": result.finish_reason,
                "parsed": result.verdict.parsed,
                "valid": result.verdict.valid,
            })
    summary = {}
    for side, rs in runs.items():
        per_token = [r["latency_s"] / r["completion_tokens"] for r in rs if r["completion_tokens"]]
        summary[side] = {
            "requests": len(rs),
            "parse_rate": round(100 * sum(r["parsed"] for r in rs) / len(rs), 1),
            "valid_rate": round(100 * sum(r["valid"] for r in rs) / len(rs), 1),
            "latency_median_s": round(statistics.median(r["latency_s"] for r in rs), 3),
            "completion_tokens_median": statistics.median(r["completion_tokens"] or 0 for r in rs),
            "cut_at_max_tokens": sum(r["finish_reason"] == "length" for r in rs),
            "latency_per_token_median_ms": round(1000 * statistics.median(per_token), 2),
        }
    free = summary["unconstrained"]
    ratios = {
        side: {
            "latency_ratio": round(summary[side]["latency_median_s"]
                                   / free["latency_median_s"], 3),
            "per_token_latency_ratio": round(summary[side]["latency_per_token_median_ms"]
                                             / free["latency_per_token_median_ms"], 3),
        }
        for side in ("response_format", "compact")
    }
    return {"summary": summary, "ratios_vs_unconstrained": ratios, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=24, help="customer messages to use")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--warmup", type=int, default=2, help="untimed messages first")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per request (a loaded 2-core machine is slow)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    srv = server.start(chat_server("cpu"))
    gen = StructuredClient(srv, max_tokens=args.max_tokens, timeout=args.timeout)
    load_before = os.getloadavg()
    result = measure(gen, args.messages, args.warmup)
    met = {side: result["summary"][side]["valid_rate"] >= TARGET_VALID_RATE
           for side in ("response_format", "compact")}
    report = {
        "benchmark": "structured",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "server": {"name": srv.name, "model": srv.model_name, "runtime": srv.runtime.kind},
        "request": {"temperature": 0.0, "max_tokens": args.max_tokens,
                    "messages": args.messages, "warmup": args.warmup, "concurrency": 1},
        "targets": {"constrained_valid_rate_min": TARGET_VALID_RATE,
                    "latency": "no target: reported as measured"},
        "valid_target_met": met,
        **result,
    }
    publish(report, args.out)


if __name__ == "__main__":
    main()
