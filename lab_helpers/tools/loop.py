"""The tool loop: model -> tool calls -> executor -> tool messages -> model ... -> answer.

    loop = ToolLoop(srv, executor)                      # a lab Server (or client= and model=)
    t = loop.run("Where is order ORD-78432?", tool_choice="required")
    t.answer, t.calls, t.results, t.stop_reason         # the Transcript

How vLLM 0.32 treats `tool_choice` with the Hermes parser (read from its source:
`vllm/tool_parsers/structural_tag_registry.py`, `hermes_tool_parser.py`) — the loop sends the
value as given and never rewrites it:

- "auto": the model writes freely; only once it writes `<tool_call>` does the grammar take over
  (and, for `strict` tools, pin the arguments to the schema). A small model mostly answers in
  prose. The parser pulls `<tool_call>` blocks out of the text: several in one turn are fine.
- "required": the output *must* be one or more `<tool_call>` blocks whose arguments match the
  schema: a valid call every time, even when no tool fits ("Thanks!" gets a call too).
- named (`{"type": "function", "function": {"name": ...}}`): exactly one call of that tool.
- "none": no call is parsed; the tools are still in the prompt (vLLM only drops them with
  `--exclude-tools-when-tool-choice-none`), so the model may still *talk* about calling one.

After the first round, forcing again would loop forever, so later rounds use `then` ("auto" by
default) unless `tool_choice` is a list: one choice per round (a named tool per round drives a
multi-call task a small model cannot do in one turn). `max_rounds` bounds the model requests;
a transcript that runs out of rounds says so (`stop_reason == "max_rounds"`) and has no answer.

Requests go through `lab_helpers.connect`: no retries, the key re-read on a 401 (a replaced
server), and a failed round raises the connection layer's error (ServerUnavailable,
RequestRejected, KeyRejected), never a raw `openai` one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import openai

from ..connect import Connection, require_finished
from ..connect.batch import at_once
from ..errors import LabError
from .executor import ToolExecutor, ToolResult
from .registry import ToolCall

if TYPE_CHECKING:
    from ..server import Server

ToolChoice = str | dict[str, Any]
StopReason = Literal["answered", "max_rounds", "length"]
DEFAULT_SYSTEM_PROMPT = (
    "You are ACME Corp's customer support assistant. Use the tools to look up orders, "
    "customers and products, to book callbacks and to open tickets. Answer briefly, using "
    "only facts the tools returned."
)
# What a refused round (HTTP 4xx) means, and what to do (cause, fix).
REJECTED = ("the request (tools, tool_choice, messages) is invalid for this server",
            "check the tools and tool_choice the round sent (loop.request_kwargs(...)), then "
            "run again")


class ToolLoopError(LabError, ValueError):
    """The loop's input is invalid; nothing was sent."""


def named(tool: str) -> dict[str, Any]:
    """tool_choice that forces one call of `tool`."""
    return {"type": "function", "function": {"name": tool}}


def choice_label(choice: ToolChoice) -> str:
    """"auto", "required", "none" or "named:<tool>"."""
    if isinstance(choice, dict):
        return f"named:{choice.get('function', {}).get('name', '?')}"
    return str(choice)


@dataclass
class Round:
    """One model request and what came of it."""

    index: int
    tool_choice: ToolChoice
    content: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    finish_reason: str | None = None
    seconds: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class Transcript:
    """Everything one `run` did, in order: the view the transcript widget renders."""

    user: str
    tool_choice: ToolChoice
    model: str
    rounds: list[Round] = field(default_factory=list)
    answer: str | None = None
    stop_reason: StopReason | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def calls(self) -> list[ToolCall]:
        return [c for r in self.rounds for c in r.calls]

    @property
    def results(self) -> list[ToolResult]:
        return [x for r in self.rounds for x in r.results]

    @property
    def tools_called(self) -> list[str]:
        return [c.name for c in self.calls]

    def steps(self) -> list[tuple[str, Any]]:
        """Flat (kind, payload) steps: ("user", text), ("call", ToolCall), ("result",
        ToolResult), ("text", str) for prose that came with calls, ("answer", str)."""
        out: list[tuple[str, Any]] = [("user", self.user)]
        for rnd in self.rounds:
            if rnd.calls:
                if rnd.content.strip():
                    out.append(("text", rnd.content))
                for call, result in zip(rnd.calls, rnd.results, strict=False):
                    out += [("call", call), ("result", result)]
        if self.answer is not None:
            out.append(("answer", self.answer))
        return out


class ToolLoop:
    """Runs conversations with tools against one server, through one executor."""

    def __init__(self, server: Server | None = None, executor: ToolExecutor | None = None, *,
                 client: openai.OpenAI | None = None, model: str | None = None,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, temperature: float = 0.0,
                 max_tokens: int = 200, max_rounds: int = 4) -> None:
        if executor is None:
            raise ToolLoopError("A ToolLoop needs an executor.",
                                fix="ToolLoop(srv, ToolExecutor(acme_registry(desk)))")
        if server is not None:
            model = model or server.model_name
        if (client is None and server is None) or not model:
            raise ToolLoopError("A ToolLoop needs a server (or client= and model=).",
                                fix="ToolLoop(srv, executor) with srv = server.start(...)")
        if max_rounds < 1:
            raise ToolLoopError(f"max_rounds={max_rounds} must be at least 1.")
        self._conn = Connection.of(client if client is not None else server)
        self.model = model
        self.executor = executor
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_rounds = max_rounds

    @property
    def connection(self) -> Connection:
        """The server's connection (a `client=` given by the caller is used as it is)."""
        return self._conn

    @property
    def client(self) -> openai.OpenAI:
        """The openai client requests go through now (the connection's current one)."""
        return self._conn.openai()

    @property
    def registry(self):
        return self.executor.registry

    def run(self, user: str, *, tool_choice: ToolChoice | Sequence[ToolChoice] = "auto",
            then: ToolChoice = "auto", stream: bool = False,
            on_round: Callable[[Round], None] | None = None,
            history: Sequence[dict[str, Any]] = ()) -> Transcript:
        """Answer `user`, executing every tool call of every round (see the module doc)."""
        if not user.strip():
            raise ToolLoopError("The message is empty.", fix="write what the customer asks")
        plan = list(tool_choice) if isinstance(tool_choice, (list, tuple)) else [tool_choice]
        for choice in plan + [then]:
            self._check_choice(choice)
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages += [dict(m) for m in history]
        messages.append({"role": "user", "content": user})
        transcript = Transcript(user=user, tool_choice=plan[0] if len(plan) == 1 else plan,
                                model=self.model, messages=messages)
        start = time.perf_counter()
        for index in range(self.max_rounds):
            choice = plan[index] if index < len(plan) else then
            rnd = self._request(messages, choice, index, stream)
            transcript.rounds.append(rnd)
            if not rnd.calls:
                messages.append({"role": "assistant", "content": rnd.content})
                transcript.answer = rnd.content
                transcript.stop_reason = "length" if rnd.finish_reason == "length" \
                    else "answered"
                if on_round:
                    on_round(rnd)
                break
            messages.append({"role": "assistant", "content": rnd.content or None,
                             "tool_calls": [c.message_part() for c in rnd.calls]})
            for call in rnd.calls:
                result = self.executor.execute(call)
                rnd.results.append(result)
                messages.append(result.message())
            if on_round:
                on_round(rnd)
        else:
            transcript.stop_reason = "max_rounds"
        transcript.seconds = time.perf_counter() - start
        return transcript

    def run_many(self, users: Sequence[str],
                 tool_choices: Sequence[ToolChoice | Sequence[ToolChoice]] | ToolChoice = "auto",
                 *, workers: int = 6, progress: bool = True,
                 **kwargs: Any) -> list[Transcript]:
        """Several independent conversations at once (vLLM batches them: on two CPU cores six
        loops take about as long as two), with a progress bar. `tool_choices` is one per
        message, or one for all; the other keyword arguments go to `run`. Every input is
        checked before any request."""
        if isinstance(tool_choices, (str, dict)):
            tool_choices = [tool_choices] * len(users)
        if len(tool_choices) != len(users):
            raise ToolLoopError(f"{len(users)} messages but {len(tool_choices)} tool choices.",
                                fix="give one tool_choice per message, or a single one")
        for user, choice in zip(users, tool_choices, strict=True):
            if not user.strip():
                raise ToolLoopError("One of the messages is empty.")
            for c in list(choice) if isinstance(choice, (list, tuple)) else [choice]:
                self._check_choice(c)
        return at_once([partial(self.run, user, tool_choice=choice, **kwargs)
                        for user, choice in zip(users, tool_choices, strict=True)],
                       workers=workers, desc="conversations", unit="conversation",
                       progress=progress)

    def _check_choice(self, choice: ToolChoice) -> None:
        if isinstance(choice, dict):
            name = choice.get("function", {}).get("name")
            if choice.get("type") != "function" or name not in self.registry:
                raise ToolLoopError(f"tool_choice={choice!r} names no registered tool.",
                                    cause=f"the tools are: {', '.join(self.registry.names)}",
                                    fix="use named('get_order_status') or a mode string")
        elif choice not in ("auto", "required", "none"):
            raise ToolLoopError(f"tool_choice={choice!r} is not a mode vLLM knows.",
                                fix="use 'auto', 'required', 'none' or named('<tool>')")

    def request_kwargs(self, messages: list[dict[str, Any]],
                       choice: ToolChoice) -> dict[str, Any]:
        """The chat completion request of one round (shown by the notebook as is)."""
        return {"model": self.model, "messages": messages, "tools": self.registry.definitions(),
                "tool_choice": choice, "temperature": self.temperature,
                "max_tokens": self.max_tokens}

    def _request(self, messages: list[dict[str, Any]], choice: ToolChoice, index: int,
                 stream: bool) -> Round:
        """One round through the connection (a streamed one is read inside it, so a stream
        that breaks is translated too)."""
        return self._conn.request(
            lambda client: self._send(client, messages, choice, index, stream),
            what=f"round {index + 1} of the tool loop", rejected=REJECTED)

    def _send(self, client: openai.OpenAI, messages: list[dict[str, Any]], choice: ToolChoice,
              index: int, stream: bool) -> Round:
        kwargs = self.request_kwargs(messages, choice)
        rnd = Round(index=index, tool_choice=choice)
        start = time.perf_counter()
        if stream:
            _stream_into(rnd, client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}))
        else:
            response = client.chat.completions.create(**kwargs)
            msg = response.choices[0].message
            rnd.content = msg.content or ""
            rnd.calls = [ToolCall.from_openai(c) for c in (msg.tool_calls or [])]
            rnd.finish_reason = response.choices[0].finish_reason
            if response.usage:
                rnd.prompt_tokens = response.usage.prompt_tokens
                rnd.completion_tokens = response.usage.completion_tokens
        require_finished(rnd.finish_reason)  # vLLM shutting down ends an answer with "abort"
        rnd.seconds = time.perf_counter() - start
        return rnd


def _stream_into(rnd: Round, stream: Any) -> None:
    """Assemble content and tool calls from streamed deltas (calls arrive in pieces, by
    index: the id and name first, the arguments as JSON fragments)."""
    parts: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        if chunk.usage:
            rnd.prompt_tokens = chunk.usage.prompt_tokens
            rnd.completion_tokens = chunk.usage.completion_tokens
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        if delta.content:
            parts.append(delta.content)
        for tc in delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            if tc.id:
                slot["id"] = tc.id
            if tc.function is not None:
                if tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
        if choice.finish_reason:
            rnd.finish_reason = choice.finish_reason
    rnd.content = "".join(parts)
    rnd.calls = [ToolCall(c["name"], c["arguments"], c["id"]) for _, c in sorted(calls.items())]
