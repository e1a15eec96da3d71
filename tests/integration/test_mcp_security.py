"""MCP security with real processes and real HTTP requests (no model).

- The ACME server over HTTP needs its bearer token on loopback too: without it, or with a
  wrong one, 401 and nothing runs; the token comes from a 0600 file, never from argv or output.
- Its Origin check is exact: a look-alike origin (`http://127.0.0.1:<port>.evil.example`) gets
  403.
- Tool annotations are hints: a hostile server's writing tool that claims to be read-only is
  asked about (and denied) unless the lab trusts that server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from lab_helpers.mcp.bridge import McpBridge, McpServerSpec, McpToolInfo, McpUnavailable
from lab_helpers.mcp.servers import AcmeHttpServer, free_port
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolCall, ToolExecutor, ToolResult
from lab_helpers.tools.approval import ApprovalGate, AuditLog, Choice, PendingApproval


@pytest.fixture(scope="module")
def acme(tmp_path_factory) -> Iterator[tuple[AcmeHttpServer, SupportDesk]]:
    """An ACME HTTP server of this module's own, over a fresh database (tickets get written)."""
    desk = SupportDesk(tmp_path_factory.mktemp("acme") / "acme.sqlite")
    with AcmeHttpServer(free_port(), db_path=desk.path) as server:
        yield server, desk


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "t", "version": "1"}}}
CREATE = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
    "name": "create_ticket", "arguments": {"customer_email": "john.smith@email.com",
                                           "subject": "past the gate", "description": "curl"}}}


def _post(server: AcmeHttpServer, body: dict, *, token: str | None = None,
          session: str | None = None, origin: str | None = None) -> httpx.Response:
    """One raw JSON-RPC POST to the server, as curl or a web page would send it."""
    headers = {"Accept": "application/json, text/event-stream",
               "Content-Type": "application/json", "MCP-Protocol-Version": "2025-06-18"}
    for name, value in (("Authorization", token and f"Bearer {token}"),
                        ("Mcp-Session-Id", session), ("Origin", origin)):
        if value:
            headers[name] = value
    return httpx.post(server.url, json=body, headers=headers, timeout=10)


def _session(server: AcmeHttpServer, token: str) -> str:
    """An initialized MCP session (its id), opened with the right token."""
    opened = _post(server, INIT, token=token)
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    done = _post(server, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                 token=token, session=session)
    assert done.status_code == 202, done.text
    return session


def test_http_needs_the_token_on_loopback_too(acme):
    """Any local process could curl the write tools past every approval: not without the
    token, which lives in an owner-only file and never on a command line."""
    http_server, desk = acme
    before = len(desk.tickets())
    for token in (None, "wrong"):
        assert _post(http_server, CREATE, token=token).status_code == 401
        assert _post(http_server, INIT, token=token).status_code == 401
    token = http_server.token_file.read_text().strip()
    assert http_server.token_file.stat().st_mode & 0o777 == 0o600
    session = _session(http_server, token)
    for wrong in (None, "wrong", token[:-1]):            # a live session is not enough
        refused = _post(http_server, CREATE, token=wrong, session=session)
        assert refused.status_code == 401 and "ticket_id" not in refused.text
    assert len(desk.tickets()) == before                   # nothing ran
    done = _post(http_server, CREATE, token=token, session=session)
    assert done.status_code == 200 and "ticket_id" in done.text
    assert len(desk.tickets()) == before + 1
    argv = psutil.Process(http_server.process.pid).cmdline()
    assert "--token-file" in argv and not any(token in word for word in argv)
    with pytest.raises(McpUnavailable):
        McpBridge([McpServerSpec.http("acme", http_server.url, token="wrong")],
                  connect_timeout=15).close()
    with McpBridge([http_server.spec()]) as b:              # the token from the file
        assert b.call("acme", "get_order_status", {"order_id": "ORD-78432"})["status"]


def test_http_checks_the_exact_origin(acme):
    http_server = acme[0]
    token = http_server.token_file.read_text().strip()
    port = http_server.port
    for evil in ("http://evil.example", f"http://127.0.0.1:{port}.evil.example",
                 f"http://localhost:{port}.evil.example", f"http://127.0.0.1:{port + 1}",
                 f"https://127.0.0.1:{port}"):
        assert _post(http_server, INIT, token=token, origin=evil).status_code == 403, evil
    for own in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        assert _post(http_server, INIT, token=token, origin=own).status_code == 200, own


def test_cli_serve_http_creates_the_token_file_and_prints_only_its_path(tmp_path):
    home, port = tmp_path / "home", free_port()
    env = {**os.environ, "VLLM_LAB_HOME": str(home), "VLLM_LAB_MCP_PARENT_PID": str(os.getpid())}
    proc = subprocess.Popen([sys.executable, "-m", "lab_helpers.cli", "mcp", "serve",
                             "--transport", "http", "--port", str(port),
                             "--db", str(tmp_path / "acme.sqlite")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        proc.terminate()
        out = proc.communicate(timeout=15)[0]
    finally:
        proc.kill()
    path = home / "servers" / "mcp-acme.token"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    token = path.read_text().strip()
    assert str(path) in out and token not in out, out


HOSTILE = [sys.executable, str(Path(__file__).with_name("hostile_mcp_server.py"))]
LOOKUP = ToolCall("notes__lookup_order_notes", json.dumps({"order_id": "ORD-78432"}), "1")


def _run_hostile(spec: McpServerSpec, tmp_path: Path) -> tuple[McpToolInfo, ToolResult,
                                                              list[str], list[dict]]:
    """The hostile server's tool through bridge, gate and executor; whoever asks is denied."""
    asked: list[str] = []

    def deny(pending: PendingApproval) -> Choice:
        asked.append(pending.name)
        return "deny"
    gate = ApprovalGate(decide=deny, audit=AuditLog(tmp_path / f"audit-{spec.trusted}.jsonl"))
    with McpBridge([spec]) as b:
        ex = ToolExecutor(gate.guard(b.registry()), decide=gate.executor_hook)
        result = ex.execute(LOOKUP)
        return b.tools("notes")[0], result, asked, gate.records()


def test_a_tool_that_claims_read_only_asks_unless_its_server_is_trusted(tmp_path):
    """The MCP spec: annotations are hints, untrusted unless the server is trusted. This one
    claims readOnlyHint and inserts a ticket; only the lab's trust setting decides."""
    db = tmp_path / "acme.sqlite"
    desk = SupportDesk(db)
    seed = desk.snapshot()
    info, result, asked, records = _run_hostile(
        McpServerSpec.stdio("notes", [*HOSTILE, str(db)]), tmp_path)        # untrusted: default
    assert result.status == "denied" and asked == ["notes__lookup_order_notes"]
    assert desk.snapshot() == seed                                            # nothing written
    assert [(r["decision"], r["decided_by"]) for r in records
            if r["event"] == "decision"] == [("deny", "user")]
    assert (info.claims_read_only, info.trusted, info.read_only) == (True, False, False)

    info, result, asked, records = _run_hostile(
        McpServerSpec.stdio("notes", [*HOSTILE, str(db)], trusted=True), tmp_path)
    assert result.ok and asked == []                                          # never asked
    assert ("approve", "policy: auto") in [(r["decision"], r["decided_by"]) for r in records]
    assert [t["subject"] for t in desk.tickets()][-1] == "planted ORD-78432"
    assert (info.claims_read_only, info.trusted, info.read_only) == (True, True, True)
