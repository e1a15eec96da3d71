"""The bearer token of the ACME MCP server over HTTP: a file, owner-only, in the lab home.

    path = ensure_token()            # <lab home>/servers/mcp-acme.token, created if missing
    read_token(path)                 # what a client sends as `Authorization: Bearer <token>`

Over HTTP every request needs the token, loopback included: on a shared host any local process
or other user can reach 127.0.0.1. The token lives where the vLLM servers' API keys live
(`lab_helpers.server.keys`): the lab's `servers` folder (0700), the file itself 0600. The
server reads it at start (`vllm-lab mcp serve --transport http --token-file PATH`) and clients
read it when they connect (`McpServerSpec.http(..., token_file=PATH)`), so the token is never
on a command line, which `ps` shows to every user, nor in a notebook's output.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from ..errors import LabError
from ..paths import servers_dir

TOKEN_FILENAME = "mcp-acme.token"


class TokenFileError(LabError, PermissionError):
    """The token file is missing, empty, or readable by other users."""


def default_token_file() -> Path:
    """`<lab home>/servers/mcp-acme.token` (its folder is owner-only)."""
    return servers_dir() / TOKEN_FILENAME


def ensure_token(path: Path | str | None = None) -> Path:
    """The token file (default: the lab home's), created 0600 with a fresh token if missing.

    An existing file is kept, so a restarted server and its clients agree on the token. The
    file appears whole or not at all (written aside, then linked in place): two processes
    that start at once end up with the same token.
    """
    path = Path(path) if path is not None else default_token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        return path
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".token-")  # 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write("mcp-" + secrets.token_urlsafe(32))
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        os.unlink(aside)
    return path


def read_token(path: Path | str) -> str:
    """The token in `path`; refused if the file is missing, empty, or open to other users."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise TokenFileError(f"No MCP token file at {path}.",
                             cause="the ACME MCP server creates it when it starts over HTTP",
                             fix="vllm-lab mcp serve --transport http") from None
    if mode & 0o077:
        raise TokenFileError(f"The MCP token file {path} can be read by other users.",
                             cause="whoever reads the token can call the server's tools",
                             fix=f"chmod 600 {path}")
    token = path.read_text().strip()
    if not token:
        raise TokenFileError(f"The MCP token file {path} is empty.",
                             fix=f"rm {path}; vllm-lab mcp serve --transport http")
    return token
