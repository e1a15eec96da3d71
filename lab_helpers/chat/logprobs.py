"""What the model almost said: the top alternatives of every generated token (logprobs).

    from lab_helpers.chat.logprobs import token_alternatives
    token_alternatives(srv, "Name our support bot.", temperature=0, top=3)

One request with `logprobs=True, top_logprobs=top`. It streams: vLLM 0.32 sends the logprobs of
each chunk's tokens in `choices[0].logprobs.content`, checked by the integration tests. The
probabilities are the model's, before sampling: at temperature 0 the chosen token is always
the most likely one; at a high temperature it often is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..connect import Connection, require_finished

if TYPE_CHECKING:
    import pandas as pd

    from ..server import Server


@dataclass(frozen=True)
class TokenChoice:
    """One generated token, its probability and the most likely alternatives at that step."""

    token: str
    p: float
    alternatives: tuple[tuple[str, float], ...]
    """The `top` most likely (token, probability), most likely first."""

    @property
    def rank(self) -> int | None:
        """1 if the sampled token was the most likely; None if outside the top alternatives."""
        for i, (token, _) in enumerate(self.alternatives, 1):
            if token == self.token:
                return i
        return None


def sample_with_logprobs(srv: Server, prompt: str, *, temperature: float, top: int = 3,
                         max_tokens: int = 12, system_prompt: str | None = None,
                         seed: int | None = None) -> list[TokenChoice]:
    """Stream one answer with logprobs and return each generated token's choice.

    The stream is read inside the connection's request, so a server that breaks off mid-answer
    raises the lab's error like any other failure."""
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": prompt})

    def sample(client: Any) -> list[TokenChoice]:
        stream = client.chat.completions.create(
            model=srv.model_name, messages=messages, temperature=temperature,
            max_tokens=max_tokens, logprobs=True, top_logprobs=top + 1, stream=True, seed=seed)
        out: list[TokenChoice] = []
        finish = None
        for chunk in stream:
            if not chunk.choices:
                continue
            finish = chunk.choices[0].finish_reason or finish
            for item in (chunk.choices[0].logprobs and chunk.choices[0].logprobs.content) or []:
                out.append(_choice(item, top))
        require_finished(finish)  # vLLM shutting down ends a stream with "abort"
        return out

    return Connection.of(srv).request(sample, what="the logprobs request")


def _choice(item: Any, top: int) -> TokenChoice:
    # vLLM 0.32 lists the sampled token first, then the most likely ones, `top + 1` in all
    # (we ask for one more). Sorted by probability, the first `top` are the true top ones: a
    # sampled token outside them is the least likely of the list and falls off.
    alternatives = dict((alt.token, math.exp(alt.logprob)) for alt in item.top_logprobs)
    ranked = sorted(alternatives.items(), key=lambda kv: -kv[1])[:top]
    return TokenChoice(item.token, math.exp(item.logprob), tuple(ranked))


def alternatives_table(choices: list[TokenChoice]) -> pd.DataFrame:
    """One row per generated token: the token, its probability, and the top alternatives."""
    import pandas as pd

    rows = []
    for step, choice in enumerate(choices, 1):
        row: dict[str, Any] = {"step": step, "token": repr(choice.token),
                               "p": round(choice.p, 3), "rank": choice.rank}
        for i, (token, p) in enumerate(choice.alternatives, 1):
            row[f"#{i}"] = f"{token!r} {p:.2f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("step")


def token_alternatives(srv: Server, prompt: str, *, temperature: float, top: int = 3,
                       max_tokens: int = 12, **kwargs: Any) -> pd.DataFrame:
    """sample_with_logprobs as a table (see alternatives_table)."""
    return alternatives_table(sample_with_logprobs(srv, prompt, temperature=temperature, top=top,
                                                   max_tokens=max_tokens, **kwargs))
