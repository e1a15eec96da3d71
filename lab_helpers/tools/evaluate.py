"""How well does a model call tools? Valid calls, the right tool, the right arguments.

    cases = support_requests()                       # labelled requests shipped with the lab
    df = evaluate(loop, cases, ["auto", "required"]) # one row per request and mode
    evaluate(loop, cases, [Setup("per_field", FOR_THE_MODEL, per_field=True)])  # extract.py
    rates(df)                                        # the table the notebook shows

Only the model's *first* turn is scored and nothing is executed (the ticket requests would
write otherwise): the question is what the model asks for, not what the backend answers.

- valid: at least one call, to a registered tool, with arguments that pass the schema;
- right_tool: the first call is the expected tool;
- args_match: right tool, and every expected argument is there: strings must contain the
  expected text (case-insensitive: "laptop" matches "laptops"), other values must be equal.

Requests run concurrently (vLLM batches them), which keeps 2 x 22 requests within a minute or
two on two CPU cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.resources import files
from typing import Any

import pandas as pd

from ..connect.batch import at_once
from .extract import Setup
from .loop import ToolChoice, ToolLoop, choice_label
from .registry import ToolCall, ToolCallError


@dataclass(frozen=True)
class Case:
    """A support request and the call a good assistant would make for it."""

    request: str
    tool: str
    expect: dict[str, Any]


def support_requests() -> list[Case]:
    """The lab's labelled requests (lab_helpers/data/tool_requests.json)."""
    data = json.loads(files("lab_helpers.data").joinpath("tool_requests.json").read_text())
    return [Case(d["request"], d["tool"], d["expect"]) for d in data]


def arguments_match(arguments: dict[str, Any], expect: dict[str, Any]) -> bool:
    for key, wanted in expect.items():
        got = arguments.get(key)
        if isinstance(wanted, str):
            if not isinstance(got, str) or wanted.lower() not in got.lower():
                return False
        elif got != wanted:
            return False
    return True


ChoiceForCase = ToolChoice | Setup | Callable[[Case], ToolChoice]


def score(loop: ToolLoop, case: Case, choice: ChoiceForCase) -> dict[str, Any]:
    """One request, one mode: the first turn's calls, scored.

    `choice` may be a `Setup` (`lab_helpers.tools.extract`: tools narrowed to the message,
    maybe a router first; labelled with its name, its router request counted in the time) or
    a function of the case (e.g. a named choice of the expected tool; labelled with the
    function's name).
    """
    start = time.perf_counter()
    if isinstance(choice, Setup):
        label = choice.name
        attempt = choice.run(loop, case.request)
        calls, content, finish = attempt.calls, attempt.content, attempt.finish_reason
    else:
        label = choice.__name__ if callable(choice) else choice_label(choice)
        if callable(choice):
            choice = choice(case)
        messages = []
        if loop.system_prompt:
            messages.append({"role": "system", "content": loop.system_prompt})
        messages.append({"role": "user", "content": case.request})
        kwargs = loop.request_kwargs(messages, choice)
        response = loop.connection.request(
            lambda client: client.chat.completions.create(**kwargs),
            what=f"the scoring request ({label})")
        message = response.choices[0].message
        calls = [ToolCall.from_openai(c) for c in (message.tool_calls or [])]
        content, finish = message.content or "", response.choices[0].finish_reason
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {
        "mode": label, "request": case.request, "expected_tool": case.tool,
        "calls": len(calls), "tool": calls[0].name if calls else None,
        "arguments": calls[0].arguments if calls else None,
        "content": content[:600], "finish_reason": finish, "seconds": seconds,
        "valid": False, "right_tool": False, "args_match": False, "problem": "",
    }
    if not calls:
        row["problem"] = "no tool call"
        return row
    try:
        loop.registry.validate(calls[0])
    except ToolCallError as exc:
        row["problem"] = exc.what
        return row
    plain = json.loads(calls[0].arguments)
    row["valid"] = True
    row["right_tool"] = calls[0].name == case.tool
    row["args_match"] = row["right_tool"] and arguments_match(plain, case.expect)
    return row


def evaluate(loop: ToolLoop, cases: Sequence[Case], choices: Sequence[ChoiceForCase],
             *, workers: int = 6, progress: bool = True) -> pd.DataFrame:
    """Every case under every tool_choice, `workers` requests at a time (with a progress bar)."""
    rows = at_once([partial(score, loop, case, choice) for choice in choices for case in cases],
                   workers=workers, desc="requests", unit="request", progress=progress)
    return pd.DataFrame(rows)


def rates(df: pd.DataFrame) -> pd.DataFrame:
    """Per mode: requests, and the share of valid calls / right tool / matching arguments."""
    table = df.groupby("mode", sort=False).agg(
        requests=("request", "size"), valid_call=("valid", "mean"),
        right_tool=("right_tool", "mean"), args_match=("args_match", "mean"),
        median_s=("seconds", "median"))
    return table.round(3)
