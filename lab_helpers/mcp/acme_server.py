"""ACME's support desk as an MCP server (the `mcp` SDK's `MCPServer`), over stdio or HTTP.

    vllm-lab mcp serve                                  # stdio: a client starts it
    vllm-lab mcp serve --transport http --port 18931    # http://127.0.0.1:18931/mcp
    vllm-lab mcp serve --transport http --host 0.0.0.0 --token SECRET   # beyond loopback

Tools are the desk's five domain functions (module 3's, unchanged: the same signatures become
the same schemas), annotated read-only or not so a client's policy can tell reads from writes.
Resources: the FAQ (`acme://faq`) and the product list from the database (`acme://products`).

HTTP is Streamable HTTP at `/mcp`. The SDK checks Host and Origin against loopback when the
server listens on 127.0.0.1 (a web page on another origin cannot drive it: 403); beyond
loopback the server refuses to start without a token and answers 401 to any request that does
not carry `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import is_loopback
from ..errors import LabError
from ..support import WRITE_TOOLS, SupportDesk

SERVER_NAME = "acme"
DEFAULT_HTTP_PORT_OFFSET = 31
"""`vllm-lab mcp serve --transport http` listens on the lab's port base + 31 by default."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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
        server.add_tool(_reported(fn), annotations=ToolAnnotations(
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



def http_app(server: MCPServer, *, host: str = "127.0.0.1", token: str | None = None
             ) -> ASGIApp:
    """The Streamable HTTP app with the Origin/Host checks and, if given, the token check."""
    if not is_loopback(host) and not token:
        example = secrets.token_urlsafe(16)  # a fresh random token to suggest
        raise McpServeError(f"Refusing to serve MCP on {host} without a token.",
                            cause="beyond loopback anyone on the network could call the tools",
                            fix=f"vllm-lab mcp serve --transport http --host {host} "
                                f"--token {example}")
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host) and host not in ("0.0.0.0", "::"):
        hosts.append(f"{host}:*")
        origins += [f"http://{host}:*", f"https://{host}:*"]
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                         allowed_hosts=hosts, allowed_origins=origins)
    app = server.streamable_http_app(transport_security=security, host=host)
    return BearerToken(app, token) if token else app


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
          token: str | None = None, db_path: Path | str | None = None) -> None:
    """Run the server until interrupted (stdio: until the client closes stdin)."""
    if transport not in ("stdio", "http"):
        raise McpServeError(f"Unknown transport {transport!r}.",
                            fix="vllm-lab mcp serve --transport stdio")
    if transport == "stdio":
        build_server(SupportDesk(db_path)).run("stdio")
        return
    import uvicorn

    from ..paths import port_base

    app = http_app(build_server(SupportDesk(db_path)), host=host, token=token)
    _exit_with_parent()
    uvicorn.run(app, host=host, port=port or port_base() + DEFAULT_HTTP_PORT_OFFSET,
                log_level="warning")


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

