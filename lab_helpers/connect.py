"""The one way the lab reaches a server: its key, its timeouts, its retries, its errors.

    from lab_helpers.connect import Connection

    conn = Connection.of("chat")              # a lab server by name, a Server, or a URL (+ api_key)
    reply = conn.request(lambda client: client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}]))
    conn.get("/metrics").text                 # an authenticated GET, same rules
    conn.served_models()                      # {"smollm2-135m-instruct": 8192}

Every helper that talks to a lab server (ChatSession, StructuredClient, ToolLoop, logprobs,
metrics, the benchmark's pre-check, the semantic search) gets its client here; none builds
`OpenAI(...)` itself. `Server.client()` stays the plain client a learner writes by hand.

The policy, the same for all of them:

- **Key.** A lab server's key is read from its key file (`servers/<name>.key`) when the
  connection is made and kept. A 401 makes the connection read the file again, *once*: a
  replaced server (a restart, a config change under the same name) wrote a new key, and the
  request is sent again with it. Only if the file holds a new key: a second 401 with the same
  key would fail the same way. A key given by hand (`api_key=`) is never re-read.
- **Timeouts.** Connect: 5 s, because a lab server is local (or in the room): it accepts at
  once or it is not there, and "start it again" should not wait. Read (the longest silence
  between two bytes): 300 s for model requests, because a 2-core machine queues requests
  behind a benchmark or a batch of tool loops and the first token can take minutes; a
  streamed answer is never cut by it while tokens arrive. 10 s for the small routes
  (/v1/models, /tokenize, /metrics): the API process answers them without the engine.
- **Retries.** None by the SDK (`max_retries=0`). A refused connection means the server is
  stopped, and backing off only hides that for seconds; a timed-out or failed generation
  resent would queue the same work again on a machine that is already too busy. The one
  retry is the 401 one above: the only failure a second attempt fixes.
- **After a failure** to reach a lab server, its next request finds it again first (by name:
  it may be back on another port) and says at once if it is not running.
- **Errors** pass through `translate`, the one translator: every `openai` and `httpx` failure
  becomes a `ServerRequestError` (a `LabError`: what failed, the likely cause, the fix).
  ServerUnavailable: unreachable, timed out, 5xx, died mid-answer. KeyRejected: 401 after the
  re-read. RequestRejected: another 4xx, with the server's own `reason` (ModelNotServed for a
  model the server does not serve).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
import openai

from . import server
from .errors import LabError, ServerNotFound
from .server import Server
from .server.keys import read_api_key

T = TypeVar("T")
Hint = tuple[str, str]
"""(cause, fix) for a request the server rejects: the caller knows what was in it."""

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0
QUICK_TIMEOUT_S = 10.0
DEFAULT_SERVER = "chat"
RESTART_FIX = (
    "start the server again: `vllm-lab up` in a terminal (or server.start(chat_server()) in a "
    "notebook), then try again"
)
REJECTED: Hint = (
    "the request is invalid for this server (a setting out of range, or a feature it does "
    "not support)",
    "change what the server names, then send again",
)


# -- errors ------------------------------------------------------------------------------------


class ServerRequestError(LabError):
    """A request to a server failed (the base of the errors below)."""


class ServerUnavailable(ServerRequestError):
    """The server cannot be reached, timed out, failed (5xx) or stopped answering mid-answer."""

    def __init__(self, what: str, *, unsent: str = "", partial: str = "", **kwargs: str) -> None:
        self.unsent = unsent
        """The user's message that was not answered: send it again once the server is back."""
        self.partial = partial
        """What had streamed before the connection broke."""
        super().__init__(what, **kwargs)


class KeyRejected(ServerRequestError):
    """The server refused the API key (401), also after its key file was read again."""


class RequestRejected(ServerRequestError, ValueError):
    """The server refused this request (4xx): `reason` is the server's own message."""

    def __init__(self, what: str, *, reason: str, status: int | None = None,
                 **kwargs: str) -> None:
        self.reason = reason
        self.status = status
        super().__init__(what, **kwargs)


class ModelNotServed(RequestRejected):
    """The requested model is not served (by this server, or by any running lab server)."""

    def __init__(self, what: str, *, served: Iterable[str], **kwargs: str) -> None:
        self.served = list(served)
        super().__init__(what, reason=what, status=404, **kwargs)


def not_served(model: str, served: Iterable[str], where: str = "") -> ModelNotServed:
    """ModelNotServed listing what is served (so the learner can pick one)."""
    names = list(served)
    at = f" at {where}" if where else ""
    return ModelNotServed(
        f"Model {model!r} is not served{at}. Served models: {', '.join(names) or 'none'}.",
        served=names, fix="pick one of those, or start a server for this model (vllm-lab up)")


def restart_fix(name: str | None) -> str:
    """How to bring a stopped server back: the chat server by its command, others by name."""
    if name in (None, DEFAULT_SERVER):
        return RESTART_FIX
    return (f"start the server again (vllm-lab up, or server.start(...) with name={name!r} in a "
            "notebook), then try again")


# -- the translator ----------------------------------------------------------------------------


def api_error_message(exc: Any) -> str:
    """The server's own reason from an openai APIError (vLLM puts it in the JSON body)."""
    return _reason(getattr(exc, "body", None)) or str(getattr(exc, "message", exc))


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(message, dict):
            message = message.get("message")
        if message:
            return str(message)
    return ""


def status_of(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, the server's reason) of a failed response; (None, "") for any other
    failure. Covers the openai SDK's errors and the lab's own httpx requests."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code, api_error_message(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            reason = _reason(response.json())
        except ValueError:
            reason = ""
        return response.status_code, reason or response.text[:200] or response.reason_phrase
    return None, ""


def translate(exc: BaseException, *, label: str, server_name: str | None = None,
              what: str = "the request", rejected: Hint | None = None, key_hint: str = "",
              unsent: str = "", partial: str = "") -> LabError:
    """The lab's error for a failed request to `label`. See the module doc for the classes.

    `what` names the request in messages ("the json constraint", "round 2 of the tool loop");
    `rejected` is (cause, fix) when the server refuses it; `key_hint` the fix for a key given
    by hand that is refused; `unsent`/`partial` travel on ServerUnavailable (see ChatSession).
    """
    if isinstance(exc, LabError):
        if isinstance(exc, ServerUnavailable) and unsent and not exc.unsent:
            exc.unsent = unsent  # raised before sending (the server was not found again)
        return exc
    status, reason = status_of(exc)
    down = {"unsent": unsent, "partial": partial,
            "details": "Your message was not added to the history: send it again." if unsent
            else ""}
    who = label[:1].upper() + label[1:]  # the label at the start of a sentence
    if status == 401:
        if server_name:
            return KeyRejected(
                f"{who} refused the API key (401), also the one just read again from its "
                "key file.",
                cause="the server was not started by this lab home (another lab or program on "
                      "its port), or its key file was replaced by hand",
                fix=f"restart it: vllm-lab down {server_name}, then start it again "
                    "(vllm-lab up)")
        return KeyRejected(
            f"{who} refused the API key (401).",
            cause="no key, or the key of another server (a restart writes a new one)",
            fix=key_hint or "connect by the lab server's name, which reads its current key: "
                            "e.g. ChatSession(\"chat\")")
    if status is not None and 400 <= status < 500:
        cause, fix = rejected or REJECTED
        return RequestRejected(f"The server rejected {what}: {reason}", reason=reason,
                               status=status, cause=cause, fix=fix)
    if status is not None:
        return ServerUnavailable(
            f"{who} answered {what} with an error ({status}): {reason}",
            cause="the server failed on this request (its log says why), or is shutting down",
            fix=f"look at the server log (vllm-lab logs {server_name or DEFAULT_SERVER}), "
                "then try again", **down)
    kind = type(exc).__name__
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return ServerUnavailable(
            f"{who} did not answer {what} in time ({kind}).",
            cause="the server is overloaded (requests queue on a busy CPU) or stuck",
            fix="check it with `vllm-lab status`; try again when it is less busy, or pass a "
                "longer timeout=", **down)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        reading = what.startswith("GET /")  # the lab's own reads (/metrics, /v1/models)
        place = f"read {label}{what[4:]}" if reading else f"reach {label}"
        said = (f"{who} stopped answering mid-answer ({kind})." if partial
                else f"Cannot {place}: the server does not answer ({kind}).")
        return ServerUnavailable(said, cause="the server was stopped, crashed, or is still "
                                             "starting", fix=restart_fix(server_name), **down)
    if isinstance(exc, openai.APIError):  # an error event in a stream (vLLM stopping), ...
        said = (f"{who} stopped answering mid-answer: {api_error_message(exc)}" if partial
                else f"{who} failed during {what}: {api_error_message(exc)}")
        return ServerUnavailable(
            said, cause="the server is shutting down, or its engine failed (its log says "
                        f"which: vllm-lab logs {server_name or DEFAULT_SERVER})",
            fix=restart_fix(server_name), **down)
    return ServerRequestError(f"{what[:1].upper()}{what[1:]} to {label} failed: {kind}: {exc}",
                              fix="try again; if it keeps failing, look at the server log "
                                  "(vllm-lab logs)")


# -- the connection ----------------------------------------------------------------------------


class Connection:
    """One server as the lab reaches it: where, with which key, and what a failure means.

    Thread-safe: the tool loop and the structured batches send from several threads at once.
    Make one with `Connection.of(...)`; keep it, so a replaced server is followed.
    """

    def __init__(self, base_url: str, *, server_name: str | None = None,
                 api_key: str | Callable[[], str] | None = None, timeout: float = READ_TIMEOUT_S,
                 key_hint: str = "", client: openai.OpenAI | None = None) -> None:
        """`server_name`: a lab server, whose key is read from its key file (`api_key`, if
        given, only while there is none). Otherwise `api_key`: a key, or a function that reads
        one (another kind of server's key file). `client`: an openai client made by the
        caller, used as it is (no key re-read)."""
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.server_name = server_name
        if server_name:
            given = api_key if isinstance(api_key, str) else ""
            self._read_key: Callable[[], str] = lambda: read_api_key(server_name) or given
        elif callable(api_key):
            self._read_key = api_key
        else:
            self._read_key = lambda: api_key or ""
        self.timeout = timeout
        self.key_hint = key_hint
        self.key_reloads = 0
        """How often a 401 made the key file be read again (and the request sent again)."""
        self._key = self._read_key()
        self._fixed = client
        self._client: openai.OpenAI | None = None
        self._client_for: tuple[str, str] | None = None
        self._stale = False
        self._lock = threading.Lock()

    @classmethod
    def of(cls, target: Connection | Server | openai.OpenAI | str | Any, *,
           api_key: str | None = None, timeout: float = READ_TIMEOUT_S,
           key_hint: str = "") -> Connection:
        """A connection to a lab server (a Server or its name), a URL (with `api_key`), an
        existing openai client, or any object with `base_url` and `api_key` (llama-server)."""
        if isinstance(target, Connection):
            return target
        if isinstance(target, openai.OpenAI):
            return cls(str(target.base_url), api_key=target.api_key, client=target,
                       timeout=timeout, key_hint=key_hint)
        if isinstance(target, str) and not target.startswith(("http://", "https://")):
            target = server.get(target)
        if isinstance(target, str):
            return cls(target, api_key=api_key, timeout=timeout, key_hint=key_hint)
        if isinstance(target, Server) and api_key is None:
            return cls(target.base_url, server_name=target.name, timeout=timeout)
        key = api_key if api_key is not None else (lambda: getattr(target, "api_key", "") or "")
        return cls(target.base_url, api_key=key, timeout=timeout, key_hint=key_hint)

    @property
    def api_key(self) -> str:
        """The key requests carry now."""
        return self._key

    @property
    def label(self) -> str:
        return (f"the lab server {self.server_name!r} at {self.base_url}" if self.server_name
                else self.base_url)

    def openai(self) -> openai.OpenAI:
        """The openai client for the current address and key (rebuilt when either changes)."""
        if self._fixed is not None:
            return self._fixed
        with self._lock:
            wanted = (self.base_url, self._key)
            if self._client is None or self._client_for != wanted:
                self._client = openai.OpenAI(
                    base_url=f"{self.base_url}/v1", api_key=self._key or "EMPTY", max_retries=0,
                    timeout=openai.Timeout(self.timeout, connect=CONNECT_TIMEOUT_S))
                self._client_for = wanted
            return self._client

    # -- requests -----------------------------------------------------------------------------

    def request(self, call: Callable[[openai.OpenAI], T], *, what: str = "the request",
                rejected: Hint | None = None, unsent: str = "") -> T:
        """`call(client)` under the policy: sent again once after a 401 with a new key file,
        every failure raised as the lab's error. Put the whole use of a stream in `call` (or
        translate its errors with `translate`): a stream fails while it is read."""
        return self._attempt(lambda: call(self.openai()), what=what, rejected=rejected,
                             unsent=unsent)

    def get(self, path: str, *, timeout: float = QUICK_TIMEOUT_S) -> httpx.Response:
        """An authenticated GET of `path` (e.g. "/metrics"); a non-2xx answer raises."""
        return self._http("GET", path, None, timeout)

    def post(self, path: str, payload: dict[str, Any], *,
             timeout: float = QUICK_TIMEOUT_S) -> httpx.Response:
        """An authenticated POST of JSON to `path` (e.g. "/tokenize"); a non-2xx answer raises."""
        return self._http("POST", path, payload, timeout)

    def served_models(self, *, timeout: float = QUICK_TIMEOUT_S) -> dict[str, int | None]:
        """Served model names with their max_model_len (GET /v1/models)."""
        data = self.get("/v1/models", timeout=timeout).json().get("data", [])
        return {m["id"]: m.get("max_model_len") for m in data}

    def require_model(self, model: str, *, timeout: float = QUICK_TIMEOUT_S) -> None:
        """ModelNotServed (listing the served ones) unless the server serves `model`."""
        served = self.served_models(timeout=timeout)
        if model not in served:
            raise not_served(model, served, self.label)

    def check(self) -> None:
        """After a failure, find the server again now: ServerUnavailable at once if it is not
        running (by name), before anything is built for the next request."""
        if self._stale:
            self._find_again()

    def translate(self, exc: BaseException, *, what: str = "the request",
                  rejected: Hint | None = None, unsent: str = "",
                  partial: str = "") -> LabError:
        """`translate` for this server; a server that could not be reached is found again
        before the next request."""
        err = translate(exc, label=self.label, server_name=self.server_name, what=what,
                        rejected=rejected, key_hint=self.key_hint, unsent=unsent,
                        partial=partial)
        if isinstance(err, ServerUnavailable) and self.server_name:
            self._stale = True
        return err

    def _http(self, method: str, path: str, payload: dict[str, Any] | None,
              timeout: float) -> httpx.Response:
        def send() -> httpx.Response:
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            response = httpx.request(
                method, f"{self.base_url}{path}", headers=headers, json=payload,
                timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)))
            return response.raise_for_status()

        return self._attempt(send, what=f"{method} {path}")

    def _attempt(self, send: Callable[[], T], *, what: str, rejected: Hint | None = None,
                 unsent: str = "") -> T:
        context = {"what": what, "rejected": rejected, "unsent": unsent}
        try:
            if self._stale:
                self._find_again()
            return send()
        except Exception as exc:
            if status_of(exc)[0] != 401 or not self._reload_key():
                raise self.translate(exc, **context) from exc  # type: ignore[arg-type]
        try:
            return send()  # once more, with the key the replaced server wrote
        except Exception as exc:
            raise self.translate(exc, **context) from exc  # type: ignore[arg-type]

    def _reload_key(self) -> bool:
        """Read the key again; True if it changed (then the request is worth sending again)."""
        fresh = self._read_key()
        with self._lock:
            if not fresh or fresh == self._key:
                return False
            self._key = fresh
            self.key_reloads += 1
            return True

    def _find_again(self) -> None:
        """After a failure: the lab server by name, maybe back on another port with a new key."""
        name = self.server_name
        assert name is not None
        try:
            srv = server.get(name)
        except ServerNotFound as exc:
            raise ServerUnavailable(f"The lab server {name!r} is not running.",
                                    cause="it was stopped, or crashed",
                                    fix=restart_fix(name)) from exc
        with self._lock:
            self.base_url, self._key = srv.base_url, self._read_key()
            self._stale = False

    def __repr__(self) -> str:  # the key never shows
        return f"<Connection {self.label} (key reloads: {self.key_reloads})>"
