"""The client under test in the MCP conformance suite's client scenarios: the lab's McpBridge.

    node <suite>/dist/index.js client --scenario tools_call \
        --command "<venv>/bin/python tests/integration/mcp_conformance_client.py"

The suite starts its own test server for the scenario, then runs this command with that
server's URL appended as the last argument and the scenario's name in MCP_CONFORMANCE_SCENARIO
(dist/index.js: `[...command.split(" "), serverUrl]`, run through a shell). The suite's server
records what arrives and judges it; this program only does what the scenario expects of a
tools client, through McpBridge as a notebook would:

- initialize: connect (initialize, initialized, tools/list) and close.
- tools_call: call the server's `add_numbers` tool with two numbers.
- sse-retry: call `test_reconnection`, whose SSE stream the server closes before the answer;
  the client must reconnect (GET, honouring `retry:`) and get the answer there.

Exit status 0 when that worked; otherwise 1 and the reason on stderr (the suite counts a
non-zero exit as a failure of the scenario).
"""

from __future__ import annotations

import os
import sys

from lab_helpers.mcp.bridge import McpBridge, McpServerSpec

CALLS: dict[str, tuple[str, dict[str, object]] | None] = {
    "initialize": None,
    "tools_call": ("add_numbers", {"a": 2, "b": 3}),
    "sse-retry": ("test_reconnection", {}),
}


def main(argv: list[str]) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    if len(argv) < 2 or scenario not in CALLS:
        print(f"usage: MCP_CONFORMANCE_SCENARIO={'|'.join(CALLS)} {argv[0]} SERVER_URL",
              file=sys.stderr)
        return 2
    url = argv[-1]
    with McpBridge([McpServerSpec.http("conformance", url, call_timeout=20)],
                   connect_timeout=20) as bridge:
        print("tools:", [t.name for t in bridge.tools("conformance")])
        if CALLS[scenario] is not None:
            tool, arguments = CALLS[scenario]
            print(f"{tool}:", bridge.call("conformance", tool, arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
