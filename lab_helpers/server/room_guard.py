"""The room's policy in the lab's launcher: attendees' keys, their limits, counts and cuts.

`keyguard.py` checks the server's own key on every route; when its room keys file names
attendees (JSON `{"attendees": {"name": "key", ...}}`, written 0600 by
`lab_helpers.server.room`), an attendee's request comes here (`RoomGuard.serve`):

- The keys file is read again whenever it changes, so adding or revoking an attendee takes
  effect on the next request, without a restart; a missing file means no attendees.
- An attendee's key reaches ATTENDEE_PATHS and /metrics only (403 otherwise, websockets
  closed), and /metrics shows only their own room counts (`own_room_lines`).
- Requests, and the prompt and completion tokens of answers that carry `usage`, are counted
  per attendee name (never the key) on the server's own `/metrics` (`lab_room_requests_total`,
  `lab_room_tokens_total`), with who is active now: each attendee's requests running
  (`lab_room_requests_running`) and the time of their last request
  (`lab_room_last_request_timestamp_seconds`).
- The room's options file beside the keys (`options.json`, `{"allow_benchmarks": false}`, read
  again when it changes): unless the instructor allows benchmarks, an attendee has at most
  ATTENDEE_IN_FLIGHT sequences running at once (more get 429 with the reason: a benchmark's
  load would slow every attendee). A request counts as the sequences it asks the engine for
  (`sequences`: `n` answers for each prompt of a list), so one request cannot carry a load.
- A key revoked while its answer is still streaming gets no more of it: the stream ends with
  an error event and generation stops.

Standalone like `keyguard.py` (standard library, plus prometheus_client, which vLLM brings):
both files are mounted next to vLLM, where `lab_helpers` is not installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

OPTIONS_NAME = "options.json"  # beside the room's keys file
# An attendee's requests running at once unless benchmarks are allowed: the lab's own batches
# (module 2's experiment, module 3's evaluation, module 4's agent) send at most 8.
ATTENDEE_IN_FLIGHT = 8
# Answers whose `usage` is counted; a streamed answer has it in its last event when the
# request asked for it (`stream_options: {"include_usage": true}`).
USAGE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
USAGE_TAIL_BYTES = 64 * 1024
METRICS_PATH = "/metrics"
# What an attendee's key reaches (and /metrics, filtered): what the modules and GuideLLM send.
# The rest of vLLM's routes (/v1/responses, /invocations, /pooling, /inference/v1/...,
# abort and scaling routes) are the instructor's: 403, so no route escapes the limits.
ATTENDEE_PATHS = USAGE_PATHS | {"/v1/models", "/tokenize", "/detokenize", "/version"}
ROOM_METRICS = (b"lab_room_requests", b"lab_room_tokens", b"lab_room_last_request")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


def digest(token: str) -> bytes:
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
        found = None
        for known, name in self.names().items():
            if hmac.compare_digest(digest(token), known):
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
    return {digest(str(key)): str(name) for name, key in attendees.items() if key}


class RoomCounters:
    """Requests and tokens per attendee, on the server's own /metrics (prometheus_client's
    default registry, which vLLM's single API server exposes)."""

    def __init__(self) -> None:
        # vLLM's dependency; only the launcher needs it
        from prometheus_client import Counter, Gauge

        self.requests = Counter("lab_room_requests", "Requests per room attendee",
                                ["attendee"])
        self.tokens = Counter("lab_room_tokens", "Tokens per room attendee (from usage)",
                              ["attendee", "kind"])
        self.running = Gauge("lab_room_requests_running",
                             "Requests of a room attendee running now", ["attendee"])
        self.last_request = Gauge("lab_room_last_request_timestamp_seconds",
                                  "When a room attendee's last request came (Unix time)",
                                  ["attendee"])

    def arrived(self, attendee: str) -> None:
        self.last_request.labels(attendee).set_to_current_time()

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


def sequences(path: str, body: bytes) -> int:
    """How many sequences a request asks the engine for: `n` answers for each of its prompts
    (a completions `prompt` or embeddings `input` may be a list of them; a list of token ids
    is one prompt). A body that is not a JSON object counts as one: vLLM refuses it anyway."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return 1
    if not isinstance(request, dict):
        return 1
    n = request.get("n", 1)
    answers = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    prompts = request.get("input" if path == "/v1/embeddings" else "prompt")
    many = (path != "/v1/chat/completions" and isinstance(prompts, list) and prompts
            and not isinstance(prompts[0], int))
    return answers * (len(prompts) if many else 1)


async def read_body(receive: Any) -> tuple[bytes, Any]:
    """The request's whole body, and a `receive` that gives it to the app again (then passes
    on whatever comes next, e.g. the client's disconnect)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body), _replay(bytes(body), receive, message)
        body.extend(message.get("body", b""))
        if not message.get("more_body", False):
            return bytes(body), _replay(bytes(body), receive)


def until_set(receive: Any, gone: asyncio.Event) -> Any:
    """`receive`, except that it says the client disconnected once `gone` is set (also to a
    call already waiting), as an ASGI server does for a client that went away."""
    disconnect = {"type": "http.disconnect"}

    async def either() -> dict[str, Any]:
        if gone.is_set():
            return disconnect
        message = asyncio.ensure_future(receive())
        cut = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait((message, cut), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (message, cut):
                if not task.done():
                    task.cancel()
        return message.result() if message.done() and not message.cancelled() else disconnect

    return either


def _replay(body: bytes, receive: Any, pending: dict[str, Any] | None = None) -> Any:
    replayed = False

    async def again() -> dict[str, Any]:
        nonlocal replayed, pending
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return again


def is_metrics(path: str) -> bool:
    """Every path vLLM answers with its metrics: it mounts them as `^/metrics(.*)$`, so
    `/metrics/`, `/metricsX` and `/metrics.txt` too (and `//metrics`, however it routes)."""
    return path.lstrip("/").startswith(METRICS_PATH.strip("/"))


def own_room_lines(text: bytes, attendee: str) -> bytes:
    """/metrics as an attendee sees it: every line but the room samples of other attendees."""
    mine = f'attendee="{attendee}"'.encode()
    return b"".join(line for line in text.splitlines(keepends=True)
                    if not line.startswith(ROOM_METRICS) or mine in line)


class RoomGuard:
    """An attendee's requests: what they reach, how many at once, counted, cut when revoked."""

    counters: RoomCounters | None = None  # one set per process (a registry takes a name once)

    def __init__(self, app: ASGIApp, keys: RoomKeys) -> None:
        self.app = app
        self.keys = keys
        self._in_flight: dict[str, int] = {}  # attendee -> requests running (one event loop)
        if RoomGuard.counters is None:
            RoomGuard.counters = RoomCounters()

    async def serve(self, attendee: str, token: str, path: str, scope: Scope,
                    receive: Any, send: Any) -> None:
        """Pass an attendee's request through (within their limit of requests at once), then
        count it and its answer's usage; an answer whose key is revoked meanwhile is cut."""
        counters = self.counters
        assert counters is not None
        counters.arrived(attendee)
        if scope["type"] != "http" or not (is_metrics(path) or path in ATTENDEE_PATHS):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return None
            return await refuse(send, 403, not_for_attendees(path))
        if is_metrics(path):
            counters.count(attendee, None)
            return await self._own_metrics(attendee, scope, receive, send)
        if path not in USAGE_PATHS:
            counters.count(attendee, None)
            return await self.app(scope, receive, send)
        gone = asyncio.Event()  # set when the answer is cut: the app then hears "client gone"
        body, receive = await read_body(until_set(receive, gone))
        weight = sequences(path, body)
        limit = self.keys.in_flight_limit()
        running = self._in_flight.get(attendee, 0)
        if limit is not None and running + weight > limit:
            return await refuse(send, 429, too_many(limit, weight),
                                retry_after=weight <= limit)
        self._in_flight[attendee] = running + weight
        counters.running.labels(attendee).inc()
        tail = bytearray()

        async def watch(message: dict[str, Any]) -> None:
            if gone.is_set():
                return  # the caller has had the end of it: the rest is dropped
            if message["type"] in ("http.response.start", "http.response.body") and \
                    self.keys.attendee(token) != attendee:
                if message["type"] == "http.response.start":
                    await refuse(send, 401, REVOKED)
                else:
                    await send({"type": "http.response.body", "body": REVOKED_EVENT})
                # As for a client gone away: the app's disconnect listener cancels the answer
                # and vLLM aborts the request at once (raising here would leave vLLM's stream
                # suspended until garbage collection, generating meanwhile).
                gone.set()  # refused like any revoked key's request: not counted
                return
            if message["type"] == "http.response.body":
                tail.extend(message.get("body", b""))
                del tail[:-USAGE_TAIL_BYTES]
                if not message.get("more_body", False):
                    counters.count(attendee, usage_of(bytes(tail)))
            await send(message)

        try:
            return await self.app(scope, receive, watch)
        finally:
            self._in_flight[attendee] -= weight
            counters.running.labels(attendee).dec()

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


REVOKED = ("This attendee's key was revoked by the instructor: ask them for a new one "
           "(then vllm-lab join again).")
REVOKED_EVENT = ("data: " + json.dumps({"error": {"message": REVOKED, "type": "Unauthorized",
                                                  "code": 401}}) + "\n\n").encode()


def not_for_attendees(path: str) -> str:
    return (f"{path} is not open to attendees' keys on the room's server: they reach "
            f"{', '.join(sorted(ATTENDEE_PATHS))} and /metrics. Ask the instructor if a "
            "module needs more.")


def too_many(limit: int, weight: int = 1) -> str:
    permission = ("A benchmark against the room's server needs the instructor's permission "
                  "(vllm-lab room benchmarks on); or benchmark a server of your own.")
    if weight > limit:
        return (f"This request asks for {weight} answers at once (n answers for each prompt) "
                f"and the room's server runs at most {limit} per attendee: ask for fewer per "
                f"request (a smaller n, fewer prompts in the list). {permission}")
    return (f"The room's server runs at most {limit} requests at once per attendee (a "
            f"request with n answers or a list of prompts counts each), and yours would "
            f"exceed it: send fewer at once. {permission}")


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
