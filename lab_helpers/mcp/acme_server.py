"""ACME's support desk as an MCP server (the `mcp` SDK's `MCPServer`), over stdio or HTTP.

    vllm-lab mcp serve                                  # stdio: a client starts it
    vllm-lab mcp serve --transport http --port 18931    # http://127.0.0.1:18931/mcp
    vllm-lab mcp serve --transport http --host 0.0.0.0  # beyond loopback (same token rule)

Tools are the desk's five domain functions (module 3's, unchanged: the same signatures become
the same schemas), annotated read-only or not so a client's policy can tell reads from writes.
Resources: the FAQ (`acme://faq`) and the product list from the database (`acme://products`).

HTTP is Streamable HTTP at `/mcp`, and every request needs `Authorization: Bearer <token>`,
loopback included (on a shared host any local process or user can reach 127.0.0.1): otherwise
401, and nothing runs. The token is read from a file, 0600 in the lab home's owner-only
`servers` folder, created if missing (`tokens.py`; `--token-file` names another): never on a
command line, where `ps` shows it to everyone, and never printed. Host and Origin must be
exactly the server's own (`http://127.0.0.1:<port>`, `http://localhost:<port>`,
`http://[::1]:<port>`, and the host's beyond loopback): a web page from any other origin, a
look-alike such as `http://127.0.0.1:<port>.evil.example` included, gets 403. Over stdio there
is no token: the client starts the server as its own child process.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import LabError
from ..paths import port_base
from ..server.config import is_loopback
from ..support import WRITE_TOOLS, SupportDesk
from .tokens import ensure_token, read_token

SERVER_NAME = "acme"
DEFAULT_HTTP_PORT_OFFSET = 31
"""`vllm-lab mcp serve --transport http` listens on the lab's port base + 31 by default."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
PROGRESS_TOOLS = frozenset({"search_products"})
"""Tools that send `notifications/progress` (start, done) when the caller asks for progress."""


class McpServeError(LabError, ValueError):
    """The MCP server cannot start as asked (nothing was opened)."""


def build_server(desk: SupportDesk | None = None) -> MCPServer:
    """The ACME MCP server over one desk (the lab home's database by default)."""
    desk = desk or SupportDesk()
    server = MCPServer(SERVER_NAME, title="ACME support desk", version="1.0",
                       instructions="ACME Corp's customer support backend: orders, customers, "
                                    "products, callbacks and tickets.", log_level="WARNING")
    for fn in desk.tool_functions():
        writes = fn.__name__ in WRITE_TOOLS
        tool = _with_progress(fn) if fn.__name__ in PROGRESS_TOOLS else _reported(fn)
        server.add_tool(tool, annotations=ToolAnnotations(
            readOnlyHint=not writes, destructiveHint=False, idempotentHint=not writes,
            openWorldHint=False))

    @server.resource("acme://faq", name="faq", title="ACME customer FAQ",
                     mime_type="application/json")
    def faq() -> str:
        return files("lab_helpers.data").joinpath("acme_faq.json").read_text()

    @server.resource("acme://products", name="products", title="ACME product list",
                     mime_type="application/json")
    def products() -> str:
        with desk._connect() as conn:
            rows = conn.execute("SELECT id, name, category, price_cents, stock FROM products "
                                "ORDER BY id").fetchall()
        return json.dumps([{"product_id": r["id"], "name": r["name"],
                            "category": r["category"], "price_usd": r["price_cents"] / 100,
                            "in_stock": r["stock"] > 0} for r in rows])

    return server


def _reported(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The desk's errors (NotFound, ...) reach the client as the tool's error text; the SDK
    would otherwise hide any exception that is not its ToolError behind a generic message."""
    @functools.wraps(fn)
    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabError as exc:
            raise ToolError(f"{exc.what} {exc.cause}".strip()) from None
    return tool


def _with_progress(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`_reported(fn)` that also reports progress: 0/1 as it starts, 1/1 when it is done (the
    SDK sends `notifications/progress` only if the request carried a `progressToken`).

    The same schema as `fn`: the signature is still `fn`'s (through `__wrapped__`); only the
    type hints gain `ctx: Context`, which is how the SDK finds the parameter to inject, and it
    leaves that parameter out of the input schema."""
    reported = _reported(fn)

    @functools.wraps(fn)
    async def tool(*args: Any, ctx: Context, **kwargs: Any) -> Any:
        await ctx.report_progress(0, 1, f"{fn.__name__}: started")
        result = await anyio.to_thread.run_sync(functools.partial(reported, *args, **kwargs))
        await ctx.report_progress(1, 1, f"{fn.__name__}: done")
        return result
    tool.__annotations__ = {**fn.__annotations__, "ctx": Context}  # a copy: fn's stays as is
    return tool


def http_app(server: MCPServer, *, token: str, port: int, host: str = "127.0.0.1"
             ) -> ASGIApp:
    """The Streamable HTTP app: exact Host and Origin checks, and the token on every request."""
    if not token:
        raise McpServeError("Refusing to serve MCP over HTTP without a token.",
                            cause="any local process or user could call the write tools, past "
                                  "every approval",
                            fix="vllm-lab mcp serve --transport http (it creates a token file)")
    hosts, origins = own_addresses(host, port)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                         allowed_hosts=hosts, allowed_origins=origins)
    return BearerToken(server.streamable_http_app(transport_security=security, host=host), token)


def own_addresses(host: str, port: int) -> tuple[list[str], list[str]]:
    """(Host header values, Origin values) the server on `host:port` accepts: exact ones.

    Never the SDK's `http://127.0.0.1:*` form: that is a prefix match, which also accepts
    `http://127.0.0.1:8080.evil.example`. A wildcard bind (0.0.0.0, ::) adds no name: it has
    none of its own.
    """
    names = [f"[{h}]" if ":" in h else h for h in LOOPBACK_HOSTS]
    beyond = [] if is_loopback(host) or host in ("0.0.0.0", "::") else [
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hosts = [f"{name}:{port}" for name in names] + beyond
    return hosts, [f"http://{h}" for h in hosts] + [f"https://{h}" for h in beyond]


class BearerToken:
    """ASGI middleware: 401 unless `Authorization: Bearer <token>` (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await PlainTextResponse("missing or wrong bearer token", status_code=401)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def serve(transport: str = "stdio", *, host: str = "127.0.0.1", port: int | None = None,
          token_file: Path | str | None = None, db_path: Path | str | None = None) -> None:
    """Run the server until interrupted (stdio: until the client closes stdin).

    HTTP: the token comes from `token_file` (default: the lab home's, created if missing);
    what is printed is where that file is, never the token.
    """
    if transport not in ("stdio", "http"):
        raise McpServeError(f"Unknown transport {transport!r}.",
                            fix="vllm-lab mcp serve --transport stdio")
    if transport == "stdio":
        build_server(SupportDesk(db_path)).run("stdio")
        return
    import uvicorn

    port = port or port_base() + DEFAULT_HTTP_PORT_OFFSET
    path = ensure_token(token_file)
    app = http_app(build_server(SupportDesk(db_path)), host=host, port=port,
                   token=read_token(path))
    print(f"ACME MCP server: {own_addresses(host, port)[1][0]}/mcp (listening on {host})\n"
          f"Every client sends 'Authorization: Bearer <token>', the token stored in {path}",
          flush=True)
    _exit_with_parent()
    uvicorn.run(app, host=host, port=port, log_level="warning")


PARENT_ENV = "VLLM_LAB_MCP_PARENT_PID"


def _exit_with_parent() -> None:
    """When started for a notebook or a test (AcmeHttpServer sets PARENT_ENV), exit as soon as
    that process is gone: a killed kernel must not leave a server listening."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return

    def watch() -> None:
        while True:
            try:
                os.kill(int(parent), 0)
            except (ProcessLookupError, ValueError):
                os._exit(0)
            except PermissionError:
                pass
            time.sleep(1.0)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()

