"""What a chat holds: each turn, the numbers measured for it, and what is refused before
anything is sent (a failed request is lab_helpers.connect's error; where requests go is
`target`'s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import LabError

TurnStatus = Literal["streaming", "done", "stopped"]


# -- what goes wrong before a request is sent (failed requests: lab_helpers.connect) ------------


class ChatError(LabError):
    """A chat request could not be made."""


class ChatInputError(ChatError, ValueError):
    """The message or a setting is invalid; nothing was sent and the history is unchanged."""


class ContextLimitExceeded(ChatInputError):
    """The prompt plus max_tokens does not fit in the model's context (max_model_len)."""

    def __init__(self, what: str, *, prompt_tokens: int | None = None, limit: int | None = None,
                 **kwargs: str) -> None:
        self.prompt_tokens = prompt_tokens
        """The conversation's size in tokens as the server counted it (None: not counted)."""
        self.limit = limit
        super().__init__(what, **kwargs)


class ChatBusy(ChatError):
    """A reply is still streaming."""


# -- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyStats:
    """Timings of one answer, measured by the client, and the server's token counts.

    `ttft_s` runs from sending the request to the first content token; the decode phase from
    that token to the last one. Token counts come from the usage chunk, so they are None when
    the stream ended without one (stopped, or the server died).
    """

    ttft_s: float | None
    """Seconds from sending the request to the first token of content."""
    decode_s: float
    """Seconds from the first to the last token of content."""
    total_s: float
    """Seconds from sending the request to the end of the stream."""
    prompt_tokens: int | None
    completion_tokens: int | None
    chunks: int = 0
    """Content chunks received (not a token count: a chunk may hold more than one token)."""
    finish_reason: str | None = None
    stopped: bool = False
    total_tokens: int | None = None
    """Prompt + completion, as the server's usage chunk reports it (what fills the context)."""

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: tokens after the first one, over the time they took."""
        if not self.completion_tokens or self.completion_tokens < 2 or self.decode_s <= 0:
            return None
        return (self.completion_tokens - 1) / self.decode_s

    def summary(self) -> str:
        """One line: 'TTFT 0.17 s · 35.2 tok/s · 36 prompt + 20 completion = 56 tokens · ...'."""
        ttft = f"TTFT {self.ttft_s:.2f} s" if self.ttft_s is not None else "no token received"
        tps = self.tokens_per_s
        speed = f"{tps:.1f} tok/s" if tps is not None else "tok/s n/a"
        if self.prompt_tokens is None or self.completion_tokens is None:
            tokens = "token counts not reported (stream ended early)"
        else:
            total = self.total_tokens
            if total is None:
                total = self.prompt_tokens + self.completion_tokens
            tokens = (f"{self.prompt_tokens} prompt + {self.completion_tokens} completion = "
                      f"{total} tokens")
        parts = [ttft, speed, tokens, f"{self.total_s:.2f} s total"]
        if self.stopped:
            parts.append("stopped")
        elif self.finish_reason == "length":
            parts.append("cut at max_tokens")
        return " · ".join(parts)


@dataclass
class ChatTurn:
    """One user message and the answer to it."""

    user: str
    answer: str = ""
    status: TurnStatus = "streaming"
    model: str = ""
    stats: ReplyStats | None = None

    @property
    def stopped(self) -> bool:
        return self.status == "stopped"


@dataclass
class _Clock:
    """Timestamps of one streaming request (perf_counter seconds)."""

    start: float = field(default_factory=time.perf_counter)
    first: float | None = None
    last: float | None = None
    chunks: int = 0

    def token(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.chunks += 1

    def stats(self, usage: Any, finish_reason: str | None, stopped: bool) -> ReplyStats:
        end = time.perf_counter()
        first, last = self.first, self.last
        return ReplyStats(
            ttft_s=None if first is None else first - self.start,
            decode_s=0.0 if first is None or last is None else last - first,
            total_s=end - self.start,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            total_tokens=getattr(usage, "total_tokens", None),
            chunks=self.chunks,
            finish_reason=finish_reason,
            stopped=stopped,
        )


def validate_settings(temperature: float, top_p: float, max_tokens: int) -> None:
    """Raise ChatInputError for sampling settings the server would reject."""
    if not 0.0 <= float(temperature) <= 2.0:
        raise ChatInputError(f"temperature={temperature} is outside 0-2.",
                             fix="use 0 for repeatable answers, 0.7 for varied ones")
    if not 0.0 < float(top_p) <= 1.0:
        raise ChatInputError(f"top_p={top_p} is outside (0, 1].", fix="use a value like 0.9 or 1")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ChatInputError(f"max_tokens={max_tokens!r} must be a whole number >= 1.",
                             fix="e.g. max_tokens=256")


def check_context(limit: int, max_tokens: int, model: str, messages: list[dict[str, str]],
                  count: Callable[[], int], earlier_turns: int) -> None:
    """ContextLimitExceeded if max_tokens alone, or the prompt plus max_tokens, exceeds the
    model's context (`limit`, max_model_len). `count` asks the server for the prompt's tokens
    (POST /tokenize), but only when a cheap upper bound says it might not fit: a byte-level
    tokenizer never makes more tokens than UTF-8 bytes, plus a margin per message for the
    chat template."""
    if max_tokens > limit:
        raise ContextLimitExceeded(
            f"max_tokens={max_tokens} is above the context of {model}: "
            f"max_model_len={limit} tokens (prompt and answer together).",
            fix=f"set max_tokens to at most {limit} (much less leaves room for the prompt)",
            limit=limit,
        )
    bound = sum(len(m["content"].encode()) + 16 for m in messages) + 64
    if bound + max_tokens <= limit:
        return
    prompt = count()
    if prompt + max_tokens > limit:
        room = limit - prompt
        raise ContextLimitExceeded(
            f"The conversation no longer fits: {prompt} prompt tokens (system prompt, "
            f"{earlier_turns} earlier turns and this message) + max_tokens="
            f"{max_tokens} > max_model_len={limit} of {model}. Nothing was sent.",
            fix=(f"lower max_tokens to at most {room}, or " if room > 0 else "")
            + "start a new conversation with clear() (or the Clear button)",
            prompt_tokens=prompt, limit=limit,
        )
