"""Chat with a lab server, token by token, with the numbers that matter for each answer.

    from lab_helpers.chat import ChatSession

    chat = ChatSession("chat")                  # a running lab server, by name (or a Server)
    for piece in chat.send("Where is my ACME order?"):
        print(piece, end="", flush=True)
    print(chat.last_stats)                      # TTFT, tokens/s, prompt/completion tokens

A `ChatSession` is plain Python: the chat widget drives it from a thread, tests drive it
directly. It keeps the system prompt, the sampling settings and the history, and streams every
answer with `stream=True, stream_options={"include_usage": True}`, so the token counts in
`ReplyStats` are the server's own (the usage chunk), never estimates.

What happens to the history when something goes wrong:

- `stop()` (or closing the `send()` iterator) ends the generation and closes the stream; the
  partial answer stays in the history, marked `stopped`, and is part of the next request.
- An empty message, an invalid setting, a model that is not served, or a conversation that
  with `max_tokens` no longer fits the model's context (counted by the server's /tokenize)
  raise *before* anything is sent: the history is unchanged.
- If the server is unreachable or dies mid-answer, the turn is rolled back: the history is
  exactly what it was before `send()`, and the error (`ServerUnavailable`) carries the text in
  `.unsent` so it can be sent again as is once the server is back (`vllm-lab up`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx

from .chat_errors import (
    RESTART_FIX,
    ChatBusy,
    ChatError,
    ChatInputError,
    ContextLimitExceeded,
    ModelNotServed,
    ServerUnavailable,
    api_error_message,
)
from .chat_turns import ChatTurn, Endpoint, ReplyStats, TurnStatus, _Clock, validate_settings
from .errors import LabError

if TYPE_CHECKING:
    from openai import OpenAI

    from .server import Server

DEFAULT_SERVER = "chat"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant for ACME Corp customers. Answer briefly."

__all__ = [
    "DEFAULT_SERVER", "DEFAULT_SYSTEM_PROMPT", "RESTART_FIX", "ChatBusy", "ChatError",
    "ChatInputError", "ChatSession", "ChatTurn", "ContextLimitExceeded", "Endpoint",
    "ModelNotServed", "ReplyStats", "ServerUnavailable", "TurnStatus", "api_error_message",
    "validate_settings",
]


# -- the session -----------------------------------------------------------------------------


class ChatSession:
    """A conversation with one lab server (switchable), streamed token by token.

    `target` is a `Server`, the name of a running lab server, an `Endpoint`, or None for the
    "chat" server; or pass `base_url`, `api_key` and `model` for any OpenAI-compatible
    endpoint. Creating a session sends no request.
    """

    def __init__(
        self,
        target: Server | str | Endpoint | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_tokens: int = 256,
        timeout: float = 60.0,
    ) -> None:
        validate_settings(temperature, top_p, max_tokens)
        if base_url is not None:
            if target is not None:
                raise ValueError("pass either a server (or its name) or base_url, not both")
            if not model:
                raise ValueError("base_url needs model=... (the served model name)")
            self._endpoint = Endpoint(base_url.rstrip("/").removesuffix("/v1"),
                                      api_key or "EMPTY", model)
        else:
            self._endpoint = _resolve_server(target or DEFAULT_SERVER, model)
        self.system_prompt = system_prompt
        self._temperature = float(temperature)
        self._top_p = float(top_p)
        self._max_tokens = int(max_tokens)
        self._timeout = timeout
        self._history: list[ChatTurn] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._active: Any = None  # the open openai Stream while generating
        self._client: OpenAI | None = None
        self._client_key: tuple[str, str] | None = None
        self._limits: dict[tuple[str, str], int] = {}  # (base_url, model) -> max_model_len
        self._stale = False  # the last request failed: re-resolve the server before the next

    # -- settings ----------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def model(self) -> str:
        return self._endpoint.model

    @property
    def base_url(self) -> str:
        return self._endpoint.base_url

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        validate_settings(value, self._top_p, self._max_tokens)
        self._temperature = float(value)

    @property
    def top_p(self) -> float:
        return self._top_p

    @top_p.setter
    def top_p(self, value: float) -> None:
        validate_settings(self._temperature, value, self._max_tokens)
        self._top_p = float(value)

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    @max_tokens.setter
    def max_tokens(self, value: int) -> None:
        """Checked against the model's context when the next message is sent."""
        validate_settings(self._temperature, self._top_p, value)
        self._max_tokens = int(value)

    # -- state -------------------------------------------------------------------------------

    @property
    def history(self) -> tuple[ChatTurn, ...]:
        with self._lock:
            return tuple(replace(turn) for turn in self._history)

    @property
    def last_stats(self) -> ReplyStats | None:
        with self._lock:
            done = [t for t in self._history if t.stats is not None]
            return done[-1].stats if done else None

    @property
    def is_generating(self) -> bool:
        return self._active is not None or any(t.status == "streaming" for t in self._history)

    def messages(self, next_message: str | None = None) -> list[dict[str, str]]:
        """The messages the next request sends: system prompt, finished turns, new message.

        Stopped answers are included as far as they got.
        """
        out: list[dict[str, str]] = []
        if self.system_prompt.strip():
            out.append({"role": "system", "content": self.system_prompt})
        with self._lock:
            for turn in self._history:
                if turn.status == "streaming":
                    continue
                out.append({"role": "user", "content": turn.user})
                out.append({"role": "assistant", "content": turn.answer})
        if next_message is not None:
            out.append({"role": "user", "content": next_message})
        return out

    def clear(self) -> None:
        """Forget the conversation (the system prompt and settings stay)."""
        with self._lock:
            if self.is_generating:
                raise ChatBusy("A reply is still streaming.", fix="stop it first (stop())")
            self._history.clear()

    def stop(self) -> bool:
        """End the running generation, closing the stream. True if one was running.

        The partial answer stays in the history, marked stopped. Safe from any thread.
        """
        with self._lock:
            if not self.is_generating:
                return False
            self._stop.set()
            stream = self._active
        if stream is None:  # still sending the request: the streaming thread closes it
            return True
        # Closing the response tells vLLM the client left, so it aborts the request. The
        # streaming thread notices the flag at its next chunk (or its read fails): both end
        # the turn as stopped.
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - closing from another thread may race the reader
            pass
        return True

    # -- models and servers ------------------------------------------------------------------

    def served_models(self) -> dict[str, int | None]:
        """Models the current server serves, with their max_model_len (GET /v1/models)."""
        endpoint = self._fresh_endpoint()
        try:
            response = httpx.get(
                f"{endpoint.base_url}/v1/models",
                headers={"Authorization": f"Bearer {endpoint.api_key}"},
                timeout=min(self._timeout, 10.0),
            )
        except httpx.HTTPError as exc:
            self._stale = True
            raise self._unavailable(f"Cannot reach {endpoint.label}: {exc}") from exc
        if response.status_code == 401:
            raise ChatError(
                f"{endpoint.base_url} refused the API key (401).",
                cause="the server was restarted with a new key, or the key is wrong",
                fix="for a lab server use ChatSession(<server name>): it reads the current key",
            )
        if response.status_code != 200:
            raise self._unavailable(
                f"{endpoint.label} answered GET /v1/models with {response.status_code}: "
                f"{response.text[:200]}")
        models = {m["id"]: m.get("max_model_len") for m in response.json().get("data", [])}
        for name, limit in models.items():
            if limit:
                self._limits[(endpoint.base_url, name)] = int(limit)
        return models

    def max_model_len(self) -> int | None:
        """The current model's context length in tokens, as the server reports it (cached)."""
        key = (self._endpoint.base_url, self._endpoint.model)
        if key not in self._limits:
            served = self.served_models()
            if self._endpoint.model not in served:
                raise self._not_served(self._endpoint.model, served)
        return self._limits.get(key)

    @staticmethod
    def lab_endpoints() -> list[Endpoint]:
        """Running lab servers that can chat (embedding servers are left out)."""
        from . import server
        from .models import BUNDLED

        out = []
        for runtime in server.available_runtimes():
            for info in runtime.list():
                spec = BUNDLED.get(info.model_name)
                if info.state != "running" or (spec is not None and spec.kind != "chat"):
                    continue
                out.append(Endpoint.from_server(server.Server(runtime, info)))
        return out

    def use(self, target: Server | str | Endpoint) -> None:
        """Switch to another lab server (a Server, its name, or an Endpoint). History stays."""
        with self._lock:
            if self.is_generating:
                raise ChatBusy("A reply is still streaming.", fix="stop it before switching")
            self._endpoint = _resolve_server(target, None)
            self._stale = False

    def set_model(self, model: str) -> None:
        """Switch to `model`: on the current server if it serves it, else on a running lab
        server that does. ModelNotServed (listing what is served) if none does."""
        model = model.strip()
        try:
            here = self.served_models()
        except ServerUnavailable:
            here = {}
        if model in here:
            self.use(replace(self._endpoint, model=model))
            return
        lab = self.lab_endpoints()
        for endpoint in lab:
            if endpoint.model == model:
                self.use(endpoint)
                return
        served = dict.fromkeys(list(here) + [e.model for e in lab])
        raise self._not_served(model, served)

    def count_prompt_tokens(self, next_message: str | None = None) -> int:
        """Tokens of the prompt the next request sends, counted by the server (POST /tokenize
        with the same messages and chat template), not estimated."""
        endpoint = self._fresh_endpoint()
        try:
            response = httpx.post(
                f"{endpoint.base_url}/tokenize",
                headers={"Authorization": f"Bearer {endpoint.api_key}"},
                json={"model": endpoint.model, "messages": self.messages(next_message),
                      "add_generation_prompt": True},
                timeout=min(self._timeout, 10.0),
            )
        except httpx.HTTPError as exc:
            self._stale = True
            raise self._unavailable(f"Cannot reach {endpoint.label}: {exc}") from exc
        if response.status_code != 200:
            raise ChatError(f"{endpoint.label} could not count the prompt's tokens "
                            f"({response.status_code}): {response.text[:200]}",
                            fix="check the server log (vllm-lab logs)")
        return int(response.json()["count"])

    def export_json(self) -> str:
        """The conversation (system prompt, settings, turns with their stats) as JSON."""
        from .chat_export import to_json

        return to_json(self)

    def export_markdown(self) -> str:
        """The conversation as Markdown, one section per turn with its stats line."""
        from .chat_export import to_markdown

        return to_markdown(self)

    # -- chatting ----------------------------------------------------------------------------

    def send(self, text: str) -> Iterator[str]:
        """Send a message; iterate to receive the answer as it streams.

        Input is checked now (before the first `next()`): bad input raises here and leaves the
        history unchanged. Closing the iterator early stops the generation like `stop()`.
        """
        turn = self._prepare(text)
        return self._generate(turn)

    def stream(self, text: str, on_token: Callable[[str], None] | None = None) -> ChatTurn:
        """Send a message and block until the answer is complete (or stopped).

        `on_token` is called with each piece of text as it arrives. Returns the finished turn.
        """
        for piece in self.send(text):
            if on_token is not None:
                on_token(piece)
        with self._lock:
            return replace(self._history[-1])

    def _prepare(self, text: str) -> ChatTurn:
        if not isinstance(text, str) or not text.strip():
            raise ChatInputError("The message is empty.", fix="type a question, then send it")
        validate_settings(self._temperature, self._top_p, self._max_tokens)
        with self._lock:
            if self.is_generating:
                raise ChatBusy("A reply is still streaming.",
                               fix="wait for it, or stop it (Stop button / stop())")
        try:
            if self._stale:
                self._refresh()
            limit = self.max_model_len()
        except ServerUnavailable as exc:
            exc.unsent = text
            raise
        if limit is not None and self._max_tokens > limit:
            raise ContextLimitExceeded(
                f"max_tokens={self._max_tokens} is above the context of {self.model}: "
                f"max_model_len={limit} tokens (prompt and answer together).",
                fix=f"set max_tokens to at most {limit} (much less leaves room for the prompt)",
                limit=limit,
            )
        if limit is not None:
            self._check_fits(text, limit)
        return ChatTurn(user=text, model=self.model)

    def _check_fits(self, text: str, limit: int) -> None:
        """ContextLimitExceeded if prompt + max_tokens > limit. The server counts the prompt,
        but only when a cheap upper bound (a byte-level tokenizer never makes more tokens than
        UTF-8 bytes, plus a margin per message for the template) says it might not fit."""
        messages = self.messages(text)
        bound = sum(len(m["content"].encode()) + 16 for m in messages) + 64
        if bound + self._max_tokens <= limit:
            return
        try:
            prompt = self.count_prompt_tokens(text)
        except ServerUnavailable as exc:
            exc.unsent = text
            raise
        if prompt + self._max_tokens > limit:
            room = limit - prompt
            raise ContextLimitExceeded(
                f"The conversation no longer fits: {prompt} prompt tokens (system prompt, "
                f"{len(self._history)} earlier turns and this message) + max_tokens="
                f"{self._max_tokens} > max_model_len={limit} of {self.model}. Nothing was sent.",
                fix=(f"lower max_tokens to at most {room}, or " if room > 0 else "")
                + "start a new conversation with clear() (or the Clear button)",
                prompt_tokens=prompt, limit=limit,
            )

    def _generate(self, turn: ChatTurn) -> Iterator[str]:
        messages = self.messages(turn.user)
        with self._lock:
            if self.is_generating:
                raise ChatBusy("A reply is still streaming.", fix="wait for it, or stop it")
            self._stop.clear()
            self._history.append(turn)
        clock = _Clock()
        usage = None
        finish: str | None = None
        stream = None
        try:
            stream = self._open(messages, clock)
            with self._lock:
                self._active = stream
            if self._stop.is_set():  # stop() came while the request was being sent
                stream.close()
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish = choice.finish_reason or finish
                piece = choice.delta.content if choice.delta else None
                if piece:
                    clock.token()
                    turn.answer += piece
                    yield piece
                if self._stop.is_set():
                    break
        except GeneratorExit:  # the caller closed the iterator: a stop
            self._stop.set()
        except Exception as exc:
            if not self._stop.is_set():
                self._rollback(turn)
                raise self._translate(exc, turn) from exc
        finally:
            if stream is not None:
                try:
                    stream.close()
                except Exception:  # noqa: BLE001
                    pass
            stopped = self._stop.is_set()
            with self._lock:
                self._active = None
                if turn.status == "streaming" and turn in self._history:
                    turn.stats = clock.stats(usage, finish, stopped)
                    turn.status = "stopped" if stopped else "done"
            self._stop.clear()

    def _open(self, messages: list[dict[str, str]], clock: _Clock) -> Any:
        client = self._get_client()
        clock.start = time.perf_counter()
        return client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            temperature=self._temperature,
            top_p=self._top_p,
            max_tokens=self._max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _fresh_endpoint(self) -> Endpoint:
        """The endpoint with the lab server's current key (a restart writes a new one)."""
        endpoint = self._endpoint
        if endpoint.server_name:
            from .server.keys import read_api_key

            key = read_api_key(endpoint.server_name)
            if key and key != endpoint.api_key:
                endpoint = replace(endpoint, api_key=key)
                self._endpoint = endpoint
        return endpoint

    def _get_client(self) -> OpenAI:
        endpoint = self._fresh_endpoint()
        key = (endpoint.base_url, endpoint.api_key)
        if self._client is None or self._client_key != key:
            from openai import OpenAI

            # No retries: a dead server should say so at once, not after backoff.
            self._client = OpenAI(
                base_url=f"{endpoint.base_url}/v1", api_key=endpoint.api_key, max_retries=0,
                timeout=httpx.Timeout(self._timeout, connect=5.0),
            )
            self._client_key = key
        return self._client

    def _refresh(self) -> None:
        """After a failure: find the lab server again (it may be back on a new port/key)."""
        name = self._endpoint.server_name
        self._limits.clear()
        self._client = None
        if name:
            from . import server
            from .errors import ServerNotFound

            try:
                srv = server.get(name)
            except ServerNotFound as exc:
                raise self._unavailable(f"The lab server {name!r} is not running.") from exc
            self._endpoint = replace(self._endpoint, base_url=srv.base_url,
                                     api_key=srv.api_key)
        self._stale = False

    def _rollback(self, turn: ChatTurn) -> None:
        with self._lock:
            if turn in self._history:
                self._history.remove(turn)
            self._active = None
        self._stale = True

    def _unavailable(self, what: str, turn: ChatTurn | None = None) -> ServerUnavailable:
        name = self._endpoint.server_name
        fix = RESTART_FIX if name in (None, DEFAULT_SERVER) else (
            f"start the server again (vllm-lab up, or server.start(...) with name={name!r} in a "
            "notebook), then send the message again"
        )
        return ServerUnavailable(
            what,
            cause="the server was stopped, crashed, or is still starting",
            fix=fix + (" — your message was not added to the history" if turn else ""),
            unsent=turn.user if turn else "",
            partial=turn.answer if turn else "",
        )

    def _not_served(self, model: str, served: dict[str, Any]) -> ModelNotServed:
        names = list(served)
        listing = ", ".join(names) if names else "none (no lab server is running)"
        return ModelNotServed(
            f"Model {model!r} is not served. Served models: {listing}.",
            served=names,
            fix="pick one of those, or start a server for this model (vllm-lab up)",
        )

    def _translate(self, exc: Exception, turn: ChatTurn) -> LabError:
        import openai

        if isinstance(exc, LabError):
            return exc
        label = self._endpoint.label
        if isinstance(exc, openai.NotFoundError):
            try:
                served = self.served_models()
            except LabError:
                served = {}
            return self._not_served(self.model, served)
        if isinstance(exc, openai.AuthenticationError):
            self._stale = True
            return ChatError(
                f"{label} refused the API key (401).",
                cause="the server was restarted with a new key",
                fix="send again (the key is re-read), or use ChatSession(<server name>)",
            )
        if isinstance(exc, openai.BadRequestError):
            self._stale = False
            return ChatInputError(f"The server rejected the request: {api_error_message(exc)}",
                                  fix="change the message or the settings and send again")
        if isinstance(exc, openai.APIStatusError):
            return self._unavailable(
                f"{label} answered with an error ({exc.status_code}): "
                f"{api_error_message(exc)}", turn)
        if isinstance(exc, openai.APIConnectionError | httpx.HTTPError | openai.APIError):
            if turn.answer:
                what = f"{label} stopped answering mid-reply ({type(exc).__name__})."
            else:
                what = f"Cannot reach {label}: the server does not answer."
            return self._unavailable(what, turn)
        return ChatError(f"The chat request failed: {type(exc).__name__}: {exc}",
                         fix="send again; if it keeps failing, look at the server log "
                         "(vllm-lab logs)")


def _resolve_server(target: Server | str | Endpoint, model: str | None) -> Endpoint:
    from . import server

    if isinstance(target, Endpoint):
        endpoint = target
    else:
        endpoint = Endpoint.from_server(server.get(target) if isinstance(target, str) else target)
    return replace(endpoint, model=model) if model else endpoint
