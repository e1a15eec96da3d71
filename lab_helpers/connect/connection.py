"""`Connection`: one server as the lab reaches it (the policy is in the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import openai

from .. import server
from ..errors import LabError, ServerNotFound
from ..server import Server
from ..server.keys import read_api_key
from .errors import (
    Hint,
    ServerUnavailable,
    not_served,
    restart_fix,
    status_of,
    translate,
)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0
QUICK_TIMEOUT_S = 10.0


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
