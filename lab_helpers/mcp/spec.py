"""How the bridge reaches one MCP server (`McpServerSpec`), and the bridge's errors.

    McpServerSpec.stdio("time", [sys.executable, "-m", "mcp_server_time"], trusted=True)
    McpServerSpec.http("acme", "http://127.0.0.1:18931/mcp", token_file=path, trusted=True)

`trusted` is the lab's decision, never the server's: only a trusted server's read-only
annotations make its tools reads (see `bridge`). An HTTP token is best given as a file
(`tokens.py`), read when the bridge connects: the spec then holds no secret to show.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..errors import LabError
from .tokens import read_token

SERVER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class McpError(LabError):
    """Base of the bridge's errors."""


class McpUnavailable(McpError, ConnectionError):
    """A server could not be reached, died, or did not answer in time."""


class McpToolError(McpError):
    """The server ran the tool and answered with an error result (isError)."""


@dataclass(frozen=True)
class McpServerSpec:
    """How to reach one MCP server: a command to start (stdio) or a URL (Streamable HTTP)."""

    name: str
    command: tuple[str, ...] = ()
    url: str | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    token: str | None = field(default=None, repr=False)
    """HTTP: a bearer token given as is; prefer `token_file` (read at connect, never shown)."""
    token_file: str | None = None
    """HTTP: the file holding the bearer token (e.g. the ACME server's, `tokens.py`)."""
    call_timeout: float = 30.0
    errlog: str | None = None
    """stdio: where the server's stderr goes (a file; default: this process's stderr)."""
    trusted: bool = False
    """Believe this server's tool annotations (read-only tools become reads)? The lab's own
    ACME and Time specs say yes; any other server's tools all ask (see the module doc)."""

    @classmethod
    def stdio(cls, name: str, command: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: str | Path | None = None, call_timeout: float = 30.0,
              errlog: str | Path | None = None, trusted: bool = False) -> McpServerSpec:
        return cls(name, tuple(command), env=env, cwd=str(cwd) if cwd else None,
                   call_timeout=call_timeout, errlog=str(errlog) if errlog else None,
                   trusted=trusted)

    @classmethod
    def http(cls, name: str, url: str, *, token: str | None = None,
             token_file: str | Path | None = None, call_timeout: float = 30.0,
             trusted: bool = False) -> McpServerSpec:
        return cls(name, url=url, token=token, token_file=str(token_file) if token_file else None,
                   call_timeout=call_timeout, trusted=trusted)

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def headers(self) -> dict[str, str] | None:
        """HTTP: the Authorization header (the token file is read now), if there is a token."""
        token = read_token(self.token_file) if self.token_file else self.token
        return {"Authorization": f"Bearer {token}"} if token else None

    def check(self) -> None:
        if not SERVER_NAME.match(self.name):
            raise McpError(f"{self.name!r} cannot name an MCP server.",
                           cause="names are lower-case letters, digits and '-' (max 20), so "
                                 "tool names stay unique as <server>__<tool>",
                           fix="McpServerSpec.stdio('time', [...]) with a short plain name")
        if bool(self.command) == bool(self.url):
            raise McpError(f"MCP server {self.name!r} needs a command or a URL (one of them).",
                           fix="use McpServerSpec.stdio(name, command) or "
                               "McpServerSpec.http(name, url)")

    def refusal(self, headers: dict[str, str] | None) -> tuple[str, str] | None:
        """HTTP: (cause, fix) when the server is up but refuses this client (401: the token,
        403: the Origin), asked with one plain POST after a failed connect (the MCP client
        reports either as "Server returned an error response"); None otherwise."""
        if not self.url:
            return None
        try:
            status = httpx.post(self.url, headers=headers or {}, json={}, timeout=5).status_code
        except httpx.HTTPError:
            return None
        if status == 401:
            why = ("the token file holds another token than the server's" if headers
                   else "the spec gives no token")
            return (f"the server refused the token (HTTP 401): {why}",
                    "connect with the server's own token file, e.g. AcmeHttpServer(...).spec(), "
                    "or McpServerSpec.http(name, url, token_file=<the file the server reads>)")
        if status == 403:
            return ("the server refused the request's Origin header (HTTP 403)",
                    "connect from this machine without an Origin header (the bridge sends none)")
        return None
