"""Module 4's troubleshooting cases against real servers (no model): a connection the ACME HTTP
server refuses says it was the token (HTTP 401) and which file to use, not the MCP client's
"Server returned an error response"; a server that is not there or not installed keeps its own
cause and fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_helpers.mcp.bridge import McpBridge, McpServerSpec, McpUnavailable
from lab_helpers.mcp.servers import AcmeHttpServer, free_port
from lab_helpers.support import SupportDesk

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def acme(tmp_path_factory) -> Iterator[AcmeHttpServer]:
    desk = SupportDesk(tmp_path_factory.mktemp("acme") / "acme.sqlite")
    with AcmeHttpServer(free_port(), db_path=desk.path) as server:
        yield server


def refused(spec: McpServerSpec) -> McpUnavailable:
    with pytest.raises(McpUnavailable) as err:
        McpBridge([spec], connect_timeout=20).close()
    return err.value


def test_a_wrong_token_is_named_as_the_cause(acme, tmp_path: Path):
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-servers-token")
    wrong.chmod(0o600)
    err = refused(McpServerSpec.http("acme-wrong", acme.url, token_file=wrong))
    assert "HTTP 401" in err.cause and "another token" in err.cause
    assert "token_file" in err.fix


def test_no_token_is_named_as_the_cause(acme):
    err = refused(McpServerSpec.http("acme-none", acme.url))
    assert "HTTP 401" in err.cause and "no token" in err.cause


def test_the_right_token_still_connects(acme):
    with McpBridge([acme.spec("acme-right")], connect_timeout=20) as bridge:
        assert bridge.ping("acme-right")


def test_a_server_that_is_not_there_or_not_installed_keeps_its_cause():
    gone = refused(McpServerSpec.http("acme-gone", f"http://127.0.0.1:{free_port()}/mcp"))
    assert "ConnectError" in gone.cause and "mcp serve --transport http" in gone.fix
    missing = refused(McpServerSpec.stdio("nope", ["no-such-mcp-server"]))
    assert "FileNotFoundError" in missing.cause and "mcp install" in missing.fix
