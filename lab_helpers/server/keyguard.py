"""The lab's launcher for vLLM: the API key from a file, and a key check on every route.

    LAB_API_KEY_FILE=/path/to/chat.key python keyguard.py --model ... (vLLM's own arguments)

Why a launcher rather than `VLLM_API_KEY=... vllm serve`:
- vLLM's own key check covers only `/v1`, `/v2`, `/inference` and `/cohere`; measured on 0.32,
  `POST /invocations`, `/pooling`, `/tokenize` and `/metrics` answer without a key. `KeyGuard`
  (added with vLLM's `--middleware`) requires the key on every route except `/health`.
- The key never appears where a command or configuration is shown: not in the argv (`ps`), not
  in `podman inspect` or `podman kube generate` (only the key *file's* path is there), not in a
  preview. It is read from the file at start; a missing or empty file refuses to start, so a
  pasted preview can never start a server without a key.
- The key is in no process's environment either (`/proc/PID/environ`): `KeyGuard` reads it
  from the file itself and vLLM's own check (`VLLM_API_KEY` / `--api-key`) is not used, so
  the API server, the engine core and the worker processes it spawns never carry it.
- The file's variable is named outside the `VLLM_` prefix: vLLM warns about every `VLLM_*`
  variable it does not know.

Room mode (one server, a key per attendee): when `LAB_ROOM_KEYS_FILE` names a file (JSON
`{"attendees": {"name": "key", ...}}`, written 0600 by `lab_helpers.server.room`), each
attendee's key is accepted too. The file is read again whenever it changes, so adding or
revoking an attendee takes effect on the next request, without a restart; a missing file means
no attendees. Requests, and the prompt and completion tokens of answers that carry `usage`,
are counted per attendee name (never the key) on the server's own `/metrics`
(`lab_room_requests_total`, `lab_room_tokens_total`). An attendee's key reads `/metrics` too
(module 1's live figures need it) but sees only their own room counts: the other attendees'
names and figures are the instructor's (`own_room_lines`).

The room's options file beside the keys (`options.json`, `{"allow_benchmarks": false}`, read
again when it changes) is enforced here, not only in the attendee's lab: unless the instructor
allows benchmarks, an attendee has at most ATTENDEE_IN_FLIGHT requests running at once (more
get 429 with the reason: a benchmark's load would slow every attendee). A key revoked while
its answer is still streaming gets no more of it: the stream ends with an error event.

This file is standalone (standard library, plus prometheus_client for room counts, both of
which vLLM brings) because it is bind-mounted into the container next to vLLM, where
`lab_helpers` is not installed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import runpy
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

KEY_FILE_ENV = "LAB_API_KEY_FILE"
# What this launcher does, as a number that is part of every server's config hash: a server
# started by an older launcher (e.g. one without room keys) is replaced, not reused.
LAUNCHER_REVISION = 5
ROOM_KEYS_ENV = "LAB_ROOM_KEYS_FILE"
OPTIONS_NAME = "options.json"  # beside the room's keys file

class _Instructor:
    """The caller with the server's own key: not an attendee, not counted, not limited (a
    sentinel no name in the room file can equal, not even an empty one)."""


INSTRUCTOR = _Instructor()
# An attendee's requests running at once unless benchmarks are allowed: the lab's own batches
# (module 2's experiment, module 3's evaluation, module 4's agent) send at most 6.
ATTENDEE_IN_FLIGHT = 8
# Answers whose `usage` is counted; a streamed answer has it in its last event when the
# request asked for it (`stream_options: {"include_usage": true}`).
USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
USAGE_TAIL_BYTES = 64 * 1024
OPEN_PATHS = frozenset({"/health"})
METRICS_PATH = "/metrics"
# What an attendee's key reaches (and /metrics, filtered): what the modules and GuideLLM send.
# The rest of vLLM's routes (/v1/responses, /invocations, /pooling, /inference/v1/...,
# abort and scaling routes) are the instructor's: 403, so no route escapes the limits.
ATTENDEE_PATHS = USAGE_PATHS | {"/v1/models", "/tokenize", "/detokenize", "/version"}
ROOM_METRICS = (b"lab_room_requests", b"lab_room_tokens")
ENTRYPOINT = "vllm.entrypoints.openai.api_server"
MIDDLEWARE = "keyguard.KeyGuard"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class WatchedFile:
    """A file's parsed content, read again when the file changes (inode, mtime, size)."""

    def __init__(self, path: str | None, parse: Callable[[str], Any], missing: Any) -> None:
        self.path = path
        self._parse = parse
        self._missing = missing
        self._seen: tuple[int, int, int] | None = None
        self._value = missing
        self._lock = threading.Lock()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)

    def value(self) -> Any:
        stamp = self._stamp()
        with self._lock:
            if stamp != self._seen:
                self._value = self._parse(self.path or "") if stamp else self._missing
                self._seen = stamp
            return self._value


class RoomKeys:
    """The attendees' keys (digests by name) and the room's options, each read again from its
    file when it changes."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._keys = WatchedFile(path, _read_attendees, {})
        self._options = WatchedFile(
            os.path.join(os.path.dirname(path), OPTIONS_NAME) if path else None,
            _read_options, {})

    def names(self) -> dict[bytes, str]:
        return self._keys.value()

    def attendee(self, token: str) -> str | None:
        digest = _digest(token)
        found = None
        for known, name in self.names().items():
            if hmac.compare_digest(digest, known):
                found = name
        return found

    def in_flight_limit(self) -> int | None:
        """An attendee's requests at once: None (no limit) when benchmarks are allowed."""
        return None if self._options.value().get("allow_benchmarks") is True \
            else ATTENDEE_IN_FLIGHT


def _read_options(path: str) -> dict[str, Any]:
    """The room's options; an unreadable file is the default (benchmarks not allowed)."""
    try:
        with open(path, encoding="utf-8") as handle:
            options = json.load(handle)
        return options if isinstance(options, dict) else {}
    except (OSError, ValueError) as exc:
        print(f"keyguard: room options not read from {path}: {exc}", file=sys.stderr)
        return {}


def _read_attendees(path: str) -> dict[bytes, str]:
    """name -> key in the file, as digest -> name; an unreadable file admits no attendee."""
    try:
        with open(path, encoding="utf-8") as handle:
            attendees = json.load(handle).get("attendees", {})
    except (OSError, ValueError, AttributeError) as exc:
        print(f"keyguard: room keys not read from {path}: {exc}", file=sys.stderr)
        return {}
    return {_digest(str(key)): str(name) for name, key in attendees.items() if key}


class RoomCounters:
    """Requests and tokens per attendee, on the server's own /metrics (prometheus_client's
    default registry, which vLLM's single API server exposes)."""

    def __init__(self) -> None:
        from prometheus_client import Counter  # vLLM's dependency; only the launcher needs it

        self.requests = Counter("lab_room_requests", "Requests per room attendee",
                                ["attendee"])
        self.tokens = Counter("lab_room_tokens", "Tokens per room attendee (from usage)",
                              ["attendee", "kind"])

    def count(self, attendee: str, usage: dict[str, Any] | None) -> None:
        self.requests.labels(attendee).inc()
        for kind in ("prompt_tokens", "completion_tokens"):
            value = (usage or {}).get(kind)
            if isinstance(value, int) and value > 0:
                self.tokens.labels(attendee, kind.removesuffix("_tokens")).inc(value)


def usage_of(body: bytes) -> dict[str, Any] | None:
    """The last `"usage": {...}` object in an answer's tail: a JSON answer's, or a streamed
    answer's last event's (the events before it carry `"usage": null`)."""
    text = body.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    at = text.rfind('"usage"')
    while at != -1:
        value = text.find(":", at + len('"usage"')) + 1
        while value and value < len(text) and text[value].isspace():
            value += 1
        try:
            usage = decoder.raw_decode(text, value)[0] if value else None
        except ValueError:
            usage = None
        if isinstance(usage, dict):
            return usage
        at = text.rfind('"usage"', 0, at)
    return None


def _is_metrics(path: str) -> bool:
    """Every path vLLM answers with its metrics: it mounts them as `^/metrics(.*)$`, so
    `/metrics/`, `/metricsX` and `/metrics.txt` too (and `//metrics`, however it routes)."""
    return path.lstrip("/").startswith(METRICS_PATH.strip("/"))


def own_room_lines(text: bytes, attendee: str) -> bytes:
    """/metrics as an attendee sees it: every line but the room samples of other attendees."""
    mine = f'attendee="{attendee}"'.encode()
    return b"".join(line for line in text.splitlines(keepends=True)
                    if not line.startswith(ROOM_METRICS) or mine in line)


class KeyGuard:
    """ASGI middleware: `Authorization: Bearer <key>` on every path but /health."""

    counters: RoomCounters | None = None  # one set per process (a registry takes a name once)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._in_flight: dict[str, int] = {}  # attendee -> requests running (one event loop)
        self._key = _digest(read_key(os.environ.get(KEY_FILE_ENV)))
        self.room = RoomKeys(os.environ.get(ROOM_KEYS_ENV))
        if self.room.path and KeyGuard.counters is None:
            KeyGuard.counters = RoomCounters()

    def _caller(self, token: str | None) -> str | _Instructor | None:
        """INSTRUCTOR for the server's key, an attendee's name for theirs, else None."""
        if token is None:
            return None
        if hmac.compare_digest(_digest(token), self._key):
            return INSTRUCTOR
        return self.room.attendee(token) if self.room.path else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        if path in OPEN_PATHS:
            return await self.app(scope, receive, send)
        token = bearer_token(scope)
        caller = self._caller(token)
        if caller == INSTRUCTOR:
            return await self.app(scope, receive, send)
        if isinstance(caller, str) and token is not None and self.counters is not None:
            return await self._counted(caller, token, path, scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return None
        return await refuse(send, 401, UNAUTHORIZED)

    async def _counted(self, attendee: str, token: str, path: str, scope: Scope,
                       receive: Any, send: Any) -> None:
        """Pass an attendee's request through (within their limit of requests at once), then
        count it and its answer's usage; an answer whose key is revoked meanwhile is cut."""
        counters = self.counters
        assert counters is not None
        if scope["type"] != "http" or not (_is_metrics(path) or path in ATTENDEE_PATHS):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return None
            return await refuse(send, 403, not_for_attendees(path))
        if _is_metrics(path):
            counters.count(attendee, None)
            return await self._own_metrics(attendee, scope, receive, send)
        if path not in USAGE_PATHS:
            counters.count(attendee, None)
            return await self.app(scope, receive, send)
        limit = self.room.in_flight_limit()
        running = self._in_flight.get(attendee, 0)
        if limit is not None and running >= limit:
            return await refuse(send, 429, too_many(limit), retry_after=True)
        self._in_flight[attendee] = running + 1
        tail = bytearray()
        cut = False

        async def watch(message: dict[str, Any]) -> None:
            nonlocal cut
            if cut:
                raise Revoked(REVOKED)
            if message["type"] in ("http.response.start", "http.response.body") and \
                    self.room.attendee(token) != attendee:
                cut = True  # refused like any revoked key's request: not counted
                if message["type"] == "http.response.start":
                    await refuse(send, 401, REVOKED)
                else:
                    await send({"type": "http.response.body", "body": REVOKED_EVENT})
                # as a client gone away does: the app stops generating (vLLM aborts the request)
                raise Revoked(REVOKED)
            if message["type"] == "http.response.body":
                tail.extend(message.get("body", b""))
                del tail[:-USAGE_TAIL_BYTES]
                if not message.get("more_body", False):
                    counters.count(attendee, usage_of(bytes(tail)))
            await send(message)

        try:
            return await self.app(scope, receive, watch)
        except Exception:
            if not cut:
                raise
            return None  # the answer was cut: the app's way of giving it up is not an error
        finally:
            self._in_flight[attendee] -= 1


    async def _own_metrics(self, attendee: str, scope: Scope, receive: Any, send: Any) -> None:
        """/metrics for an attendee: asked for uncompressed, filtered by `own_room_lines`."""
        plain = {**scope, "headers": [(k, v) for k, v in scope.get("headers") or []
                                      if k.lower() != b"accept-encoding"]}
        start: dict[str, Any] = {}
        body = bytearray()

        async def hold(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    text = own_room_lines(bytes(body), attendee)
                    headers = [(k, v) for k, v in start.get("headers") or []
                               if k.lower() != b"content-length"]
                    await send({**start, "headers": [*headers, (b"content-length",
                                                                str(len(text)).encode())]})
                    await send({"type": "http.response.body", "body": text})
            else:
                await send(message)

        return await self.app(plain, receive, hold)


UNAUTHORIZED = "Unauthorized: send Authorization: Bearer <the lab server key>"
REVOKED = ("This attendee's key was revoked by the instructor: ask them for a new one "
           "(then vllm-lab join again).")
REVOKED_EVENT = ("data: " + json.dumps({"error": {"message": REVOKED, "type": "Unauthorized",
                                                  "code": 401}}) + "\n\n").encode()


class Revoked(OSError):
    """Raised into the app by `send` once an answer is cut: an OSError is how an ASGI server
    says the client is gone, so the app stops generating."""


def not_for_attendees(path: str) -> str:
    return (f"{path} is not open to attendees' keys on the room's server: they reach "
            f"{', '.join(sorted(ATTENDEE_PATHS))} and /metrics. Ask the instructor if a "
            "module needs more.")


def too_many(limit: int) -> str:
    return (f"The room's server runs at most {limit} requests at once per attendee, and "
            f"{limit} of yours are running: send fewer at once. A benchmark against the "
            "room's server needs the instructor's permission (vllm-lab room benchmarks "
            "on); or benchmark a server of your own.")


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's `Authorization: Bearer ...` header, if it has one."""
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def refuse(send: Any, status: int, message: str, retry_after: bool = False) -> None:
    """An error answer in the shape OpenAI clients read (`error.message`)."""
    body = json.dumps({"error": {"message": message, "code": status,
                                 "type": {401: "Unauthorized", 403: "Forbidden"}.get(
                                     status, "TooManyRequests")}}).encode()
    headers = [(b"content-type", b"application/json")]
    headers += [(b"www-authenticate", b"Bearer")] if status == 401 else []
    headers += [(b"retry-after", b"2")] if retry_after else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def read_key(path: str | None) -> str:
    """The key from the file, or exit with a message that says what to do."""
    if not path:
        sys.exit(f"keyguard: refusing to start vLLM without an API key: set {KEY_FILE_ENV} "
                 "to a file holding the key (the lab writes one per server in its servers/ "
                 "folder when it starts the server: vllm-lab up)")
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read().strip()
    except OSError as exc:
        sys.exit(f"keyguard: refusing to start vLLM: cannot read the key file {path} ({exc}). "
                 "Start the server with `vllm-lab up`, which writes the key file first.")
    if not key:
        sys.exit(f"keyguard: refusing to start vLLM: the key file {path} is empty.")
    return key


def main(argv: list[str]) -> None:
    read_key(os.environ.get(KEY_FILE_ENV))  # refuse before vLLM loads anything
    os.environ.pop("VLLM_API_KEY", None)    # a key in the environment would reach every child
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    sys.argv = [ENTRYPOINT, *argv, "--middleware", MIDDLEWARE]
    runpy.run_module(ENTRYPOINT, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
