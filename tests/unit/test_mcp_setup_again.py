"""Issue 19: running module 4's setup cell again left a second set of MCP server processes.

The cell makes an `AcmeHttpServer` and an `McpBridge` (which starts the stdio servers). A new
one of either, for the same servers, now ends the older one first. Real processes, counted
among this process's children with psutil.
"""

from __future__ import annotations

import time

import psutil
import pytest

from lab_helpers.mcp.bridge import McpBridge
from lab_helpers.mcp.servers import AcmeHttpServer, free_port, time_server
from lab_helpers.mcp.spec import McpError
from lab_helpers.support import SupportDesk


def children_running(marker: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and marker in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # ended while we looked
            continue
    return found


def settle(marker: str, count: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while len(children_running(marker)) != count and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(children_running(marker))


def test_a_second_bridge_for_the_same_servers_ends_the_first_ones_processes(lab_home):
    first = McpBridge([time_server()])
    try:
        assert settle("mcp_server_time", 1) == 1
        second = McpBridge([time_server()])  # the setup cell, run again
        try:
            assert settle("mcp_server_time", 1) == 1
            assert first.closed and not second.closed and second.ping("time")
            with pytest.raises(McpError, match="replaced") as caught:
                first.call("time", "get_current_time", {"timezone": "UTC"})
            assert "run the cells after the setup cell again" in caught.value.fix
            other = McpBridge([time_server()], replace_older=False)  # opted out: kept
            try:
                assert settle("mcp_server_time", 2) == 2 and not second.closed
            finally:
                other.close()
        finally:
            second.close()
    finally:
        first.close()
    assert settle("mcp_server_time", 0) == 0


def test_a_second_acme_http_server_stops_the_first(lab_home, tmp_path):
    db = tmp_path / "acme.sqlite"
    SupportDesk(db)
    token = tmp_path / "mcp.token"
    first = AcmeHttpServer(free_port(), token_file=token, db_path=db)
    try:
        assert settle("--transport http", 1) == 1
        second = AcmeHttpServer(free_port(), token_file=token, db_path=db)  # cell run again
        try:
            assert settle("--transport http", 1) == 1
            assert first.process.poll() is not None and second.process.poll() is None
        finally:
            second.stop()
    finally:
        first.stop()
    assert settle("--transport http", 0) == 0
