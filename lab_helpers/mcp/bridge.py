"""The MCP client bridge: several MCP servers at once, their tools as the lab's tools.

    bridge = McpBridge([McpServerSpec.stdio("time", [sys.executable, "-m", "mcp_server_time"],
                                            trusted=True),
                        McpServerSpec.http("acme", "http://127.0.0.1:18931/mcp",
                                           token_file=default_token_file(), trusted=True)])
    registry = bridge.registry()          # ToolSpecs named time__get_current_time, acme__...
    bridge.call("time", "get_current_time", {"timezone": "Asia/Tokyo"})
    bridge.close()

Why a bridge and not the SDK client directly: the SDK is async, notebooks and widgets are not.
The bridge runs one event loop on a background thread (anyio's blocking portal) that owns every
connection; each method here is a plain blocking call into it.

Names: a tool `get_current_time` of server `time` becomes `time__get_current_time`, so two
servers' tools can never collide; a server whose tool name does not fit (characters, length)
has that tool skipped and listed in `bridge.skipped`. Each tool function carries its
`ToolIdentity(server, tool)`: the approval gate takes identities from there, never from the
name the model wrote.

Trust: a server's tool annotations (`readOnlyHint`, ...) are its own claims, and the MCP
specification has clients treat them as untrusted unless they come from a trusted server. So
trust is the lab's configuration, not the server's word: `McpServerSpec(..., trusted=True)`
(the lab's own ACME and Time specs, `servers.py`, say so; the Filesystem server and any server
you add do not). A trusted server's read-only tools are reads (the approval gate may approve
them by policy); every tool of an untrusted server counts as a write and asks, whatever it
claims. `McpToolInfo` keeps both the claim and the trust, for showing.

Over HTTP the bridge sends `Authorization: Bearer <token>`, read from the spec's `token_file`
each time it connects (`tokens.py`), so the spec holds no secret to show. `McpServerSpec` and
the errors live in `spec.py`, the schema rewriting (`strict_parameters`) in `schemas.py`; both
are importable from here too.

Failures become errors the tool executor turns into results the model reads: an MCP error
result (`isError`) raises `McpToolError` with the server's text; a call that outlives its
time-out or a server that died raises `McpUnavailable`. A dead connection is reopened on the
next call (once), or by `reconnect(name)`.

Running a setup cell again: a new bridge for the same server names closes the older open one
first (`replace_older=True`), so the stdio servers it started (Time, Filesystem, ...) end
instead of running on beside the new ones; the old bridge then says it was replaced.
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from pydantic import ConfigDict, create_model

from ..tools.approval import ToolIdentity
from ..tools.registry import ToolRegistry
from ..tools.schema import NAME_PATTERN, ToolSpec
from .schemas import strict_parameters
from .spec import McpError, McpServerSpec, McpToolError, McpUnavailable

SEPARATOR = "__"


@dataclass
class McpToolInfo:
    server: str
    name: str
    qualified: str
    description: str
    input_schema: dict[str, Any]
    claims_read_only: bool
    """What the server's annotation says (`readOnlyHint`): a hint, not a fact."""
    trusted: bool
    """Whether the lab trusts the server (`McpServerSpec.trusted`), i.e. believes that hint."""

    @property
    def read_only(self) -> bool:
        """What the lab counts: read-only only when a trusted server says so."""
        return self.trusted and self.claims_read_only


@dataclass
class _Connection:
    spec: McpServerSpec
    client: Client | None = None
    stop: anyio.Event | None = None
    done: Any = None
    tools: list[McpToolInfo] = field(default_factory=list)


class McpTool:
    """The function behind one MCP tool in a ToolRegistry: keyword arguments -> the result."""

    def __init__(self, bridge: McpBridge, server: str, tool: str, description: str) -> None:
        self.bridge = bridge
        self.identity = ToolIdentity(server, tool)
        self.__name__ = f"{server}{SEPARATOR}{tool}"
        self.__doc__ = description

    def __call__(self, **arguments: Any) -> Any:
        return self.bridge.call(self.identity.server, self.identity.tool, arguments)


class McpBridge(AbstractContextManager["McpBridge"]):
    """Connections to several MCP servers, with a blocking API (see the module doc)."""

    # The open bridge per set of server names: a new one for the same names replaces it.
    _open: weakref.WeakValueDictionary[frozenset[str], McpBridge] = (
        weakref.WeakValueDictionary())
    _open_lock = threading.Lock()

    def __init__(self, specs: Sequence[McpServerSpec] = (), *, connect_timeout: float = 60.0,
                 replace_older: bool = True) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise McpError(f"Two MCP servers share a name: {names}.",
                           cause="tool names are <server>__<tool>: server names must differ",
                           fix="McpServerSpec.http('acme-http', url) gives the second its own")
        self.connect_timeout = connect_timeout
        self.skipped: list[str] = []
        self._lock = threading.RLock()
        self._connections: dict[str, _Connection] = {}
        self._replaced = False
        if replace_older and names:
            self._replace_older(frozenset(names))
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal = self._portal_cm.__enter__()
        try:
            for spec in specs:
                self.connect(spec)
        except BaseException:
            self.close()
            raise

    def _replace_older(self, key: frozenset[str]) -> None:
        """Close the open bridge for the same servers (a setup cell run again), then take its
        place; its server processes end before new ones start."""
        with McpBridge._open_lock:
            older = McpBridge._open.get(key)
            McpBridge._open[key] = self
        if older is not None and older is not self:
            older._replaced = True
            older.close()

    @property
    def closed(self) -> bool:
        """True once close() ran (also when a newer bridge for the same servers replaced it)."""
        return self._portal_cm is None

    # -- connections ----------------------------------------------------------------------------

    def connect(self, spec: McpServerSpec) -> list[McpToolInfo]:
        """Open (or reopen) the connection to one server and list its tools."""
        spec.check()
        headers = spec.headers()
        with self._lock:
            if spec.name in self._connections:
                self._disconnect(spec.name)
            conn = _Connection(spec)
            try:
                conn.done, conn.client = self._portal.start_task(self._hold, conn, headers)
            except Exception as exc:
                cause, fix = spec.refusal(headers) or (_why(exc), _fix(spec))
                raise McpUnavailable(f"Could not connect to MCP server {spec.name!r} "
                                     f"({spec.transport}).", cause=cause, fix=fix) from exc
            self._connections[spec.name] = conn
            conn.tools = self._list_tools(conn)
            return conn.tools

    async def _hold(self, conn: _Connection, headers: dict[str, str] | None, *,
                    task_status: Any) -> None:
        """One task per connection: enter the client, hand it out, wait for the stop signal."""
        spec = conn.spec
        errlog = open(spec.errlog, "a") if spec.errlog else sys.stderr  # noqa: SIM115
        if spec.url:
            target: Any = streamable_http_client(
                spec.url, http_client=create_mcp_http_client(headers=headers))
        else:
            target = stdio_client(StdioServerParameters(
                command=spec.command[0], args=list(spec.command[1:]), env=spec.env,
                cwd=spec.cwd), errlog=errlog)
        conn.stop = anyio.Event()
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.connect_timeout
                                   ) as scope:
                async with Client(target, mode="legacy", cache=None) as client:
                    scope.deadline = math.inf          # the time-out was for connecting only
                    task_status.started(client)
                    await conn.stop.wait()
        finally:
            if errlog is not sys.stderr:
                errlog.close()
        if scope.cancelled_caught:
            raise TimeoutError(f"no answer to initialize within {self.connect_timeout:.0f} s")

    def _disconnect(self, name: str) -> None:
        conn = self._connections.pop(name, None)
        if conn is None or conn.stop is None:
            return
        self._portal.call(conn.stop.set)
        try:
            conn.done.result(timeout=10)
        except Exception:  # noqa: BLE001 - the connection was already broken
            pass

    def reconnect(self, name: str) -> list[McpToolInfo]:
        """Close and reopen one server's session (after it died or hung)."""
        return self.connect(self._spec(name))

    def close(self) -> None:
        with self._lock:
            for name in list(self._connections):
                self._disconnect(name)
            if self._portal_cm is not None:
                self._portal_cm.__exit__(None, None, None)
                self._portal_cm = None  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def servers(self) -> list[str]:
        return list(self._connections)

    def alive(self, name: str) -> bool:
        conn = self._connections.get(name)
        return conn is not None and conn.client is not None and not conn.done.done()

    def _spec(self, name: str) -> McpServerSpec:
        if self._replaced:
            raise McpError("This MCP bridge was closed: a newer bridge for the same servers "
                           "replaced it (the setup cell ran again).",
                           fix="run the cells after the setup cell again, so they use the new "
                               "bridge")
        try:
            return self._connections[name].spec
        except KeyError:
            raise McpError(f"No MCP server named {name!r} is connected.",
                           cause=f"connected: {', '.join(self._connections) or 'none'}",
                           fix="McpBridge.connect(McpServerSpec...)") from None

    def _client(self, name: str) -> Client:
        conn = self._connections.get(name)
        if conn is None:
            self._spec(name)
        assert conn is not None
        if conn.client is None or conn.done.done():
            self.reconnect(name)
            conn = self._connections[name]
        assert conn.client is not None
        return conn.client

    # -- requests -------------------------------------------------------------------------------

    def _run(self, name: str, what: str, fn: Any, *args: Any, timeout: float | None = None
             ) -> Any:
        spec = self._spec(name)
        client = self._client(name)
        limit = timeout or spec.call_timeout

        async def bounded() -> Any:
            with anyio.fail_after(limit):
                return await fn(client, *args)
        try:
            return self._portal.call(bounded)
        except TimeoutError as exc:
            raise McpUnavailable(f"MCP server {name!r} did not answer {what} within "
                                 f"{limit:.0f} s.", cause="the server hangs or is overloaded",
                                 fix=f"bridge.reconnect({name!r})") from exc
        except McpError:
            raise
        except Exception as exc:
            if not self.alive(name) or "closed" in str(exc).lower():
                self._connections[name].client = None
                raise McpUnavailable(f"MCP server {name!r} died during {what}.",
                                     cause=_why(exc),
                                     fix=f"bridge.reconnect({name!r}); the next call also "
                                         "reconnects") from exc
            raise McpToolError(f"MCP server {name!r} refused {what}: {_why(exc)}") from exc

    def _list_tools(self, conn: _Connection) -> list[McpToolInfo]:
        name = conn.spec.name
        result = self._run(name, "tools/list", lambda c: c.list_tools())
        tools = []
        for tool in result.tools:
            qualified = f"{name}{SEPARATOR}{tool.name}"
            if not NAME_PATTERN.match(qualified) or SEPARATOR in tool.name:
                self.skipped.append(qualified)
                continue
            ann = tool.annotations
            tools.append(McpToolInfo(name, tool.name, qualified, tool.description or tool.name,
                                     dict(tool.input_schema or {"type": "object"}),
                                     bool(ann and ann.read_only_hint), conn.spec.trusted))
        return tools

    def tools(self, server: str | None = None) -> list[McpToolInfo]:
        names = [server] if server else list(self._connections)
        return [t for n in names for t in self._connections[self._spec(n).name].tools]

    def call(self, server: str, tool: str, arguments: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> Any:
        """Call one tool; the structured result, else its text. Errors: see the module doc."""
        result = self._run(server, f"{tool}()", lambda c: c.call_tool(tool, arguments or {}),
                           timeout=timeout)
        text = "\n".join(getattr(part, "text", "") for part in result.content
                         if getattr(part, "type", "") == "text")
        if result.is_error:
            raise McpToolError(f"{server}{SEPARATOR}{tool} failed: {text or 'no message'}")
        if result.structured_content is not None:
            return result.structured_content
        return text

    def ping(self, server: str) -> bool:
        """`ping` (the bridge speaks the initialize-handshake protocol, where ping exists)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._run(server, "ping", lambda c: c.send_ping())
        return True

    def list_resources(self, server: str) -> list[dict[str, Any]]:
        result = self._run(server, "resources/list", lambda c: c.list_resources())
        return [{"uri": str(r.uri), "name": r.name, "title": r.title,
                 "mime_type": r.mime_type} for r in result.resources]

    def read_resource(self, server: str, uri: str) -> str:
        result = self._run(server, f"resources/read {uri}", lambda c: c.read_resource(uri))
        return "\n".join(getattr(c, "text", "") for c in result.contents)

    # -- as lab tools ---------------------------------------------------------------------------

    def registry(self, servers: Sequence[str] | None = None,
                 only: Sequence[str] | None = None) -> ToolRegistry:
        """The servers' tools as a ToolRegistry (strict schemas; `writes` unless a trusted
        server marks the tool read-only). `only` keeps the qualified names listed."""
        registry = ToolRegistry()
        for name in servers or self.servers:
            for info in self.tools(name):
                if only is not None and info.qualified not in only:
                    continue
                registry.add(self._spec_of(info))
        return registry

    def _spec_of(self, info: McpToolInfo) -> ToolSpec:
        params = strict_parameters(info.input_schema)
        required = set(info.input_schema.get("required", []))
        fields: dict[str, Any] = {
            key: (Any, ...) if key in required else (Any, None)
            for key in params["properties"]}
        model = create_model(f"{info.qualified}_arguments",
                             __config__=ConfigDict(extra="forbid"), **fields)
        return ToolSpec(name=info.qualified, description=info.description, parameters=params,
                        function=McpTool(self, info.server, info.name, info.description),
                        arguments_model=model, writes=not info.read_only)


def _why(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_why(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _fix(spec: McpServerSpec) -> str:
    if spec.url:
        return "vllm-lab mcp serve --transport http (then connect to its URL)"
    return "vllm-lab mcp install (the reference servers), or check the command runs by itself"

