"""Send a prompt with (or without) a constraint and get back the answer with its verdict.

    from lab_helpers.structured import StructuredClient, choice
    gen = StructuredClient(srv, max_tokens=16)
    result = gen.run("Sentiment of: I love it", choice(["positive", "negative", "neutral"]))
    result.text, result.verdict.valid, result.latency_s

Requests are not streamed: a structured answer is only useful whole, and the latency that
matters is the whole answer's. Temperature defaults to 0 so runs repeat. Every answer is
checked against its constraint on the client (`Verdict`); a run without a constraint can be
checked against one too (`check=`), which is how the unconstrained side of a comparison is
scored. Requests go through `lab_helpers.connect`: a replaced server's new key is picked up on
its first 401, and every failure is the connection layer's error (ServerRejected and
ServerUnreachable are its RequestRejected and ServerUnavailable under module 2's names).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import server
from ..connect import (
    READ_TIMEOUT_S,
    Connection,
    RequestRejected,
    ServerUnavailable,
    require_finished,
)
from .checks import StructuredError
from .constraints import Constraint
from .verdicts import Verdict

if TYPE_CHECKING:
    from ..server import Server

ServerRejected = RequestRejected
"""The server refused the request (HTTP 4xx); `reason` is the server's own message."""
ServerUnreachable = ServerUnavailable
"""The server did not answer (stopped, crashed, still starting) or failed (HTTP 5xx)."""
# What a refused constraint means, and what to do (cause, fix).
REJECTED = (
    "vLLM's structured-output backend cannot compile this constraint (a feature it does not "
    "support), or a setting is out of range",
    "remove or change the feature the server names, then send again (the constraint is "
    "rebuilt with structured.json_schema(...) / regex(...) / grammar(...))",
)


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

    def require_valid(self) -> Any:
        """The checked answer (the parsed JSON for a schema, else the text), or InvalidAnswer
        saying why it does not fit, and what to change, for a program that needs it whole."""
        if self.verdict is None:
            raise StructuredError("This answer was not checked against any constraint.",
                                  fix="run it with a constraint, or with check=constraint")
        if self.verdict.valid:
            return self.verdict.value
        reason = self.verdict.reason.removesuffix(" (the answer was cut at max_tokens)")
        what = f"The answer does not fit the constraint: {reason}."
        if self.finish_reason == "length":
            used = self.completion_tokens or 0
            raise InvalidAnswer(
                what,
                cause=f"the answer was cut at max_tokens ({used} tokens, finish_reason "
                      "'length'): the model had not finished, so the structure is not closed",
                fix=f"give it more room, e.g. max_tokens={max(4 * used, 128)} (with a grammar, "
                    "at least its longest answer, as module 2's REPORT_MAX_CHARS)")
        if not self.constrained:
            raise InvalidAnswer(
                what, cause="the request carried no constraint: the model wrote what it liked",
                fix="send the constraint with the request: gen.run(prompt, constraint)")
        raise InvalidAnswer(
            what, cause="the server did not apply the constraint (an ignored field, e.g. the "
                        "old guided_*), or the constraint checked here is not the one sent",
            fix="send the constraint built by structured.json_schema / regex / choice / "
                "grammar, and check against the same one")


class InvalidAnswer(StructuredError):
    """An answer that does not satisfy its constraint, for code that needs a valid one."""


class StructuredClient:
    """Requests to one server (a `Server`, or the name of a running lab server).

    Its connection follows the lab's policy (lab_helpers.connect): no retries, a read
    timeout long enough for a queue on a loaded 2-core machine, the key re-read on a 401.
    """

    def __init__(self, target: Server | str, *, system_prompt: str | None = None,
                 max_tokens: int = 128, temperature: float = 0.0,
                 timeout: float = READ_TIMEOUT_S) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise StructuredError(f"max_tokens={max_tokens!r} must be a whole number >= 1.",
                                  fix="e.g. StructuredClient(srv, max_tokens=128)")
        if isinstance(target, str):
            target = server.get(target)
        self._server = target
        self._conn = Connection.of(target, timeout=timeout)
        self.system_prompt = system_prompt
        self.max_tokens = max_tokens
        self.temperature = temperature

    @property
    def model(self) -> str:
        return self._server.model_name

    @property
    def server(self) -> Server:
        return self._server

    @property
    def connection(self) -> Connection:
        return self._conn

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

        def answer(client: Any) -> Any:
            response = client.chat.completions.create(
                model=self.model, messages=self.messages(prompt, system_prompt),
                max_tokens=max_tokens or self.max_tokens, temperature=self.temperature,
                **fields)
            require_finished(response.choices[0].finish_reason)  # "abort": vLLM stopping
            return response

        began = time.perf_counter()
        response = self._conn.request(
            answer, rejected=REJECTED,
            what=f"the {constraint.mode} constraint" if constraint is not None else "the request")
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
