"""Send a prompt with (or without) a constraint and get back the answer with its verdict.

    from lab_helpers.structured import StructuredClient, choice
    gen = StructuredClient(srv, max_tokens=16)
    result = gen.run("Sentiment of: I love it", choice(["positive", "negative", "neutral"]))
    result.text, result.verdict.valid, result.latency_s

Requests are not streamed: a structured answer is only useful whole, and the latency that
matters is the whole answer's. Temperature defaults to 0 so runs repeat. Every answer is
checked against its constraint on the client (`Verdict`); a run without a constraint can be
checked against one too (`check=`), which is how the unconstrained side of a comparison is
scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..chat import api_error_message
from .constraints import Constraint, StructuredError
from .verdicts import Verdict

if TYPE_CHECKING:
    from openai import OpenAI

    from ..server import Server


class ServerRejected(StructuredError):
    """The server refused the request (HTTP 4xx); `reason` is the server's own message."""

    def __init__(self, what: str, *, reason: str, status: int | None = None,
                 **kwargs: str) -> None:
        self.reason = reason
        self.status = status
        super().__init__(what, **kwargs)


class ServerUnreachable(StructuredError):
    """The server did not answer (stopped, crashed, still starting) or failed (HTTP 5xx)."""


@dataclass(frozen=True)
class StructuredResult:
    """One answer: its text, how it ended, what it cost, and whether it satisfies `checked`."""

    prompt: str
    text: str
    constrained: bool
    """True if the request carried the constraint."""
    verdict: Verdict | None
    """The check against the constraint (None if the run had nothing to check against)."""
    latency_s: float
    completion_tokens: int | None
    finish_reason: str | None
    request: dict[str, Any] = field(default_factory=dict, repr=False)
    """The constraint fields the request carried (empty when unconstrained)."""

    @property
    def valid(self) -> bool:
        return self.verdict is not None and self.verdict.valid


class StructuredClient:
    """Requests to one server (a `Server`, or the name of a running lab server).

    The openai client is made once, without retries: a dead server says so at once. The
    read timeout is generous (300 s) because a loaded 2-core machine queues requests.
    """

    def __init__(self, target: Server | str, *, system_prompt: str | None = None,
                 max_tokens: int = 128, temperature: float = 0.0, timeout: float = 300.0) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise StructuredError(f"max_tokens={max_tokens!r} must be a whole number >= 1.",
                                  fix="e.g. StructuredClient(srv, max_tokens=128)")
        if isinstance(target, str):
            from .. import server

            target = server.get(target)
        self._server = target
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._timeout = timeout
        self._client: OpenAI | None = None

    @property
    def model(self) -> str:
        return self._server.model_name

    @property
    def server(self) -> Server:
        return self._server

    def _openai(self) -> OpenAI:
        if self._client is None:
            import httpx

            self._client = self._server.client(
                max_retries=0, timeout=httpx.Timeout(self._timeout, connect=5.0))
        return self._client

    def messages(self, prompt: str, system_prompt: str | None = None) -> list[dict[str, str]]:
        system = self.system_prompt if system_prompt is None else system_prompt
        out = [{"role": "system", "content": system}] if system else []
        return out + [{"role": "user", "content": prompt}]

    def run(self, prompt: str, constraint: Constraint | None = None, *,
            check: Constraint | None = None, max_tokens: int | None = None,
            system_prompt: str | None = None) -> StructuredResult:
        """Answer `prompt`, constrained by `constraint` (None: free text).

        The answer is checked against `constraint`, or against `check` for a free-text run.
        Raises StructuredError for an empty prompt (nothing is sent), ServerRejected with the
        server's reason for a request it refuses, ServerUnreachable if it does not answer.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise StructuredError("The prompt is empty.", fix="write what the model should do")
        if constraint is not None and not isinstance(constraint, Constraint):
            raise StructuredError(
                f"constraint must be a Constraint, not {type(constraint).__name__}.",
                fix="build one with structured.json_schema(...), structured.regex(...), "
                    "structured.choice(...) or structured.grammar(...)")
        fields = constraint.request_kwargs() if constraint is not None else {}
        began = time.perf_counter()
        try:
            response = self._openai().chat.completions.create(
                model=self.model,
                messages=self.messages(prompt, system_prompt),  # type: ignore[arg-type]
                max_tokens=max_tokens or self.max_tokens,
                temperature=self.temperature,
                **fields,
            )
        except Exception as exc:
            raise self._translate(exc, constraint) from exc
        latency = time.perf_counter() - began
        choice = response.choices[0]
        text = choice.message.content or ""
        against = constraint if constraint is not None else check
        verdict = (against.check(text, finish_reason=choice.finish_reason)
                   if against is not None else None)
        return StructuredResult(
            prompt=prompt, text=text, constrained=constraint is not None, verdict=verdict,
            latency_s=latency,
            completion_tokens=getattr(response.usage, "completion_tokens", None),
            finish_reason=choice.finish_reason, request=constraint.body() if constraint else {},
        )

    def compare(self, prompt: str, constraint: Constraint, *,
                max_tokens: int | None = None) -> tuple[StructuredResult, StructuredResult]:
        """(constrained, unconstrained): the same prompt both ways, both checked."""
        constrained = self.run(prompt, constraint, max_tokens=max_tokens)
        free = self.run(prompt, None, check=constraint, max_tokens=max_tokens)
        return constrained, free

    def _translate(self, exc: Exception, constraint: Constraint | None) -> StructuredError:
        import openai

        label = f"{self.model} at {self._server.base_url}"
        if isinstance(exc, openai.APIStatusError) and 400 <= exc.status_code < 500 \
                and exc.status_code not in (401, 404):
            reason = api_error_message(exc)
            what = (f"The server rejected the {constraint.mode} constraint: {reason}"
                    if constraint is not None else f"The server rejected the request: {reason}")
            return ServerRejected(
                what, reason=reason, status=exc.status_code,
                cause="vLLM's structured-output backend cannot compile this constraint (a "
                      "feature it does not support), or a setting is out of range",
                fix="remove or change the feature the server names, then send again (the "
                    "constraint is rebuilt with structured.json_schema(...) / regex(...) / "
                    "grammar(...))")
        if isinstance(exc, openai.APIStatusError):
            return ServerUnreachable(
                f"{label} answered with an error ({exc.status_code}): {api_error_message(exc)}",
                cause="the server failed on this request, or was restarted with a new key",
                fix="look at the server log (vllm-lab logs chat), then try again")
        if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
            return ServerUnreachable(
                f"Cannot reach {label}: {type(exc).__name__}.",
                cause="the server was stopped, crashed, or is still starting",
                fix="start it again: vllm-lab up (in a terminal), then run again")
        return StructuredError(f"The request failed: {type(exc).__name__}: {exc}",
                               fix="run again; if it keeps failing, look at vllm-lab logs chat")
