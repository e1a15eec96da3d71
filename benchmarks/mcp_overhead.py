"""What MCP costs per tool call: the same ACME tool called directly, over stdio and over HTTP.

    .venv/bin/python benchmarks/mcp_overhead.py [--calls 100] [--out FILE.json]

One run measures all four paths on the same temporary database, interleaved round-robin after a
warm-up so that load on the shared machine hits them alike:

- direct: `SupportDesk.get_order_status` in this process (one SQLite query);
- gated: the same through module 3's ToolExecutor behind the approval gate (validation, a policy
  decision, two audit lines) — what the lab actually runs;
- stdio: `McpBridge.call` to `vllm-lab mcp serve` over stdio (JSON-RPC over pipes);
- http: the same over Streamable HTTP on 127.0.0.1.

Reports the median and p95 per path and the ratios of the medians to direct, and the added
milliseconds. Targets (what keeps an agent's tool round far below one model round, which is
seconds here): median added latency over MCP stdio <= 25 ms and over HTTP <= 50 ms.
Prints JSON; saves it to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from publish import RESULTS, publish

from lab_helpers.mcp.bridge import McpBridge
from lab_helpers.mcp.servers import AcmeHttpServer, acme_stdio, free_port
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolCall, ToolExecutor, acme_registry
from lab_helpers.tools.approval import ApprovalGate, AuditLog

TARGET_STDIO_ADDED_MS = 25.0
TARGET_HTTP_ADDED_MS = 50.0
ARGS = {"order_id": "ORD-78432"}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS / "mcp_overhead.json"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mcp-bench-"))
    db = work / "acme.sqlite"
    desk = SupportDesk(db)
    gate = ApprovalGate(audit=AuditLog(work / "audit.jsonl"))
    executor = ToolExecutor(gate.guard(acme_registry(desk)), decide=gate.executor_hook)
    call = ToolCall("get_order_status", json.dumps(ARGS), "bench")

    with AcmeHttpServer(free_port(), db_path=db) as http, \
            McpBridge([acme_stdio(db), http.spec("acme-http")]) as bridge:
        assert bridge.tools("acme") and bridge._spec("acme").transport == "stdio"
        paths = {
            "direct": lambda: desk.get_order_status(**ARGS),
            "gated": lambda: executor.execute(call),
            "stdio": lambda: bridge.call("acme", "get_order_status", ARGS),
            "http": lambda: bridge.call("acme-http", "get_order_status", ARGS),
        }
        # The same answer on every path (checked once, not timed).
        direct = paths["direct"]()
        assert paths["gated"]().content == direct
        assert paths["stdio"]() == direct and paths["http"]() == direct
        for _ in range(10):                                   # warm-up
            for fn in paths.values():
                fn()
        times: dict[str, list[float]] = {k: [] for k in paths}
        for i in range(args.calls):
            order = list(paths.items())
            order = order[i % len(order):] + order[:i % len(order)]   # rotate the start
            for name, fn in order:
                start = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - start) * 1000)

    med = {k: statistics.median(v) for k, v in times.items()}
    added_stdio = med["stdio"] - med["direct"]
    added_http = med["http"] - med["direct"]
    result = {
        "benchmark": "mcp_overhead",
        "tool": "get_order_status",
        "calls_per_path": args.calls,
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "median_ms": {k: round(v, 3) for k, v in med.items()},
        "p95_ms": {k: round(p95(v), 3) for k, v in times.items()},
        "ratio_to_direct": {k: round(v / med["direct"], 1) for k, v in med.items()},
        "added_ms": {"gated": round(med["gated"] - med["direct"], 3),
                     "stdio": round(added_stdio, 3), "http": round(added_http, 3)},
        "targets": {"stdio_added_ms_max": TARGET_STDIO_ADDED_MS,
                    "http_added_ms_max": TARGET_HTTP_ADDED_MS},
        "met": {"stdio": added_stdio <= TARGET_STDIO_ADDED_MS,
                "http": added_http <= TARGET_HTTP_ADDED_MS},
        "note": "one run on a shared 2-core machine: compare ratios from the same run",
    }
    publish(result, args.out)
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
