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
- If the server is unreachable or dies mid-answer (or ends it with "abort", as vLLM does when
  it shuts down), the turn is rolled back: the history is exactly what it was before `send()`,
  and the error (`ServerUnavailable`) carries the text in `.unsent` so it can be sent again as
  is once the server is back (`vllm-lab up`).

Requests go through `lab_helpers.connect` (the key re-read after a restart, timeouts, no
retries, the lab's errors); this module only adds what a conversation needs on top.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..connect import (
    DEFAULT_SERVER,
    READ_TIMEOUT_S,
    RESTART_FIX,
    Connection,
    ModelNotServed,
    RequestRejected,
    ServerUnavailable,
    api_error_message,
    not_served,
    require_finished,
)
from ..errors import LabError
from .export import to_json, to_markdown
from .target import ChatTarget, Endpoint, lab_endpoints, resolve_endpoint
from .turns import (
    ChatBusy,
    ChatError,
    ChatInputError,
    ChatTurn,
    ContextLimitExceeded,
    ReplyStats,
    TurnStatus,
    _Clock,
    check_context,
    validate_settings,
)

if TYPE_CHECKING:
    from ..server import Server

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant for ACME Corp customers. Answer briefly."
REJECTED = ("the server refused a setting or the conversation",  # a 4xx: (cause, fix)
            "change the message or the settings and send again")

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
        timeout: float = READ_TIMEOUT_S,
    ) -> None:
        validate_settings(temperature, top_p, max_tokens)
        if base_url is not None:
            if target is not None:
                raise ValueError("pass either a server (or its name) or base_url, not both")
            if not model:
                raise ValueError("base_url needs model=... (the served model name)")
            endpoint = Endpoint(base_url.rstrip("/").removesuffix("/v1"), api_key or "EMPTY",
                                model)
        else:
            endpoint = resolve_endpoint(target or DEFAULT_SERVER, model)
        self.system_prompt = system_prompt
        self._temperature = float(temperature)
        self._top_p = float(top_p)
        self._max_tokens = int(max_tokens)
        self._timeout = timeout
        self._history: list[ChatTurn] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._active: Any = None  # the open openai Stream while generating
        self.target = ChatTarget(endpoint, timeout)
        """Where requests go (`lab_helpers.chat.target`): replaced by `use()`/`set_model()`."""

    # -- settings ----------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        """Where requests go now (a replaced lab server: its new address and key)."""
        return self.target.endpoint

    @property
    def connection(self) -> Connection:
        """How requests reach the server (lab_helpers.connect)."""
        return self.target.connection

    @property
    def model(self) -> str:
        return self.target.model

    @property
    def base_url(self) -> str:
        return self.target.connection.base_url

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
        """The messages the next request sends: system prompt, finished turns (stopped answers
        as far as they got), new message."""
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
        # streaming thread sees the flag at its next chunk (or its read fails): turn stopped.
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - closing from another thread may race the reader
            pass
        return True

    # -- models and servers ------------------------------------------------------------------

    def served_models(self) -> dict[str, int | None]:
        """Models the current server serves, with their max_model_len (GET /v1/models)."""
        return self.target.served_models()

    def max_model_len(self) -> int | None:
        """The current model's context length in tokens, as the server reports it (cached)."""
        return self.target.max_model_len()

    lab_endpoints = staticmethod(lab_endpoints)

    def use(self, target: Server | str | Endpoint) -> None:
        """Switch to another lab server (a Server, its name, or an Endpoint). History stays."""
        with self._lock:
            if self.is_generating:
                raise ChatBusy("A reply is still streaming.", fix="stop it before switching")
            self.target = ChatTarget(resolve_endpoint(target, None), self._timeout)

    def set_model(self, model: str) -> None:
        """Switch to `model`: on the current server if it serves it, else on a running lab
        server that does. ModelNotServed (listing what is served) if none does."""
        self.use(self.target.find(model.strip()))

    def count_prompt_tokens(self, next_message: str | None = None) -> int:
        """Tokens of the prompt the next request sends, counted by the server (POST /tokenize
        with the same messages and chat template), not estimated."""
        return self.target.count_tokens(self.messages(next_message))

    def export_json(self) -> str:
        """The conversation (system prompt, settings, turns with their stats) as JSON."""
        return to_json(self)

    def export_markdown(self) -> str:
        """The conversation as Markdown, one section per turn with its stats line."""
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
            self.connection.check()  # a server that failed last time: found again, or said so now
            limit = self.max_model_len()
            if limit is not None:
                check_context(limit, self._max_tokens, self.model, self.messages(text),
                              lambda: self.count_prompt_tokens(text), len(self._history))
        except ServerUnavailable as exc:
            exc.unsent = text  # the server went away before anything was sent
            raise
        return ChatTurn(user=text, model=self.model)

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
            if not self._stop.is_set():
                require_finished(finish)
        except GeneratorExit:  # the caller closed the iterator: a stop
            self._stop.set()
        except Exception as exc:
            if not self._stop.is_set():
                self._rollback(turn)
                raise self._failed(exc, turn) from exc
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
        """The stream of the answer (a 401 is answered before it starts: the connection
        re-reads the key and opens it again; later failures are `_failed`'s)."""
        def create(client: Any) -> Any:
            clock.start = time.perf_counter()
            return client.chat.completions.create(
                model=self.model, messages=messages, temperature=self._temperature,
                top_p=self._top_p, max_tokens=self._max_tokens, stream=True,
                stream_options={"include_usage": True})

        return self.connection.request(create, what="the chat request", rejected=REJECTED,
                                  unsent=messages[-1]["content"])  # the new user message

    # -- plumbing ----------------------------------------------------------------------------

    def _rollback(self, turn: ChatTurn) -> None:
        with self._lock:
            if turn in self._history:
                self._history.remove(turn)
            self._active = None

    def _failed(self, exc: Exception, turn: ChatTurn) -> LabError:
        """The lab's error for a failed turn; a model the server does not know lists the
        ones it serves."""
        err = self.connection.translate(
            exc, what="the chat request", rejected=REJECTED, unsent=turn.user,
            partial=turn.answer)
        if isinstance(err, RequestRejected) and err.status == 404:
            try:
                served = self.served_models()
            except LabError:
                served = {}
            return not_served(self.model, served)
        return err
