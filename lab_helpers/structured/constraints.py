"""Constraints for vLLM's structured outputs, checked before anything is sent.

vLLM 0.32 reads two request fields (vllm/entrypoints/openai/chat_completion/protocol.py):
`response_format={"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}` and
`structured_outputs={"json"|"regex"|"choice"|"grammar": ...}` (exactly one key; the openai client
sends it through `extra_body`). The old `guided_json`, `guided_regex`, ... fields are *ignored*:
the server answers 200 with unconstrained text. A `Constraint` only ever builds the current
fields, and it cannot exist in an invalid state: every builder (and the dataclass itself) checks
the spec first, so a malformed schema, regex, grammar or choice list raises `ConstraintError`
here instead of reaching the server.

The checks (`checks.py`) use the same engines the server does where that matters: jsonschema
for the schema itself, Python's `re` (the lab validates answers with it) *and* xgrammar (vLLM's
default backend) for a regex, xgrammar's EBNF parser for a grammar.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .checks import (
    MODES,
    ConstraintError,
    InvalidSchema,
    Mode,
    check_choice,
    check_grammar,
    check_regex,
    check_schema,
)
from .verdicts import verdict

if TYPE_CHECKING:
    from .verdicts import Verdict


# -- the constraint -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """One checked constraint; `request_kwargs()` are the arguments for the openai client.

    Build it with `json_schema()`, `regex()`, `choice()` or `grammar()` (or `from_text()` for
    an editor's text); constructing it directly runs the same checks.
    """

    mode: Mode
    spec: Any
    name: str = "output"
    """The schema's name in `response_format` (JSON mode only)."""
    compact: bool = False
    """JSON mode only: send the schema as a grammar without free whitespace (see
    `compact_json_grammar`); the answer is still checked against the schema."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConstraintError(f"Unknown mode {self.mode!r}.", mode=str(self.mode),
                                  where="mode", fix=f"use one of {', '.join(MODES)}")
        checked = {"json": check_schema, "regex": check_regex, "choice": check_choice,
                   "grammar": check_grammar}[self.mode](self.spec)
        object.__setattr__(self, "spec", checked)
        if self.compact and self.mode != "json":
            raise ConstraintError("compact=True is for JSON schemas only.", mode=self.mode,
                                  where="compact", fix="leave compact=False for this mode")
        if self.mode == "json" and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise InvalidSchema(f"The schema name {self.name!r} is not allowed.",
                                mode="json", where="name",
                                fix="use letters, digits, _ or - (at most 64), e.g. 'ticket'")

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `client.chat.completions.create(...)`."""
        if self.mode == "json" and not self.compact:
            return {"response_format": self.body()["response_format"]}
        return {"extra_body": self.body()}

    def body(self) -> dict[str, Any]:
        """The fields this constraint adds to the JSON body of /v1/chat/completions."""
        if self.mode == "json" and self.compact:
            return {"structured_outputs": {"grammar": compact_json_grammar(self.spec)}}
        if self.mode == "json":
            return {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": self.name, "schema": self.spec}}}
        spec = list(self.spec) if self.mode == "choice" else self.spec
        return {"structured_outputs": {self.mode: spec}}

    def check(self, text: str, *, finish_reason: str | None = None) -> Verdict:
        """Does `text` satisfy this constraint? (jsonschema, re.fullmatch, membership, or a
        parse with the same grammar.)"""
        return verdict(self, text, finish_reason=finish_reason)

    def as_text(self) -> str:
        """The spec as an editor shows it (JSON text, the pattern, one choice a line, EBNF)."""
        if self.mode == "json":
            return json.dumps(self.spec, indent=2)
        if self.mode == "choice":
            return "\n".join(self.spec)
        return str(self.spec)

    def describe(self) -> str:
        if self.mode == "json":
            title = self.spec.get("title") or self.name
            return f"JSON schema {title!r}" + (" (compact)" if self.compact else "")
        if self.mode == "choice":
            return "one of " + ", ".join(repr(c) for c in self.spec)
        if self.mode == "regex":
            return f"regex {self.spec}"
        return f"grammar ({len(self.spec.splitlines())} lines)"


def json_schema(schema: dict[str, Any] | type | str, *, name: str = "output",
                compact: bool = False) -> Constraint:
    """JSON that validates against `schema` (a dict, a pydantic model class, or JSON text).

    Sent as `response_format` (OpenAI's field); `compact=True` sends it as a whitespace-free
    grammar instead (`compact_json_grammar`).
    """
    if isinstance(schema, type) and name == "output":
        name = schema.__name__
    return Constraint("json", schema, name=name, compact=compact)


def compact_json_grammar(schema: dict[str, Any]) -> str:
    """The schema as an EBNF grammar (xgrammar's own conversion) for one-line JSON with
    json.dumps's separators (", " and ": ") and no other whitespace between tokens.

    vLLM's JSON-schema grammar lets the model put any whitespace between tokens, and the
    request-level `disable_any_whitespace` is not read by the xgrammar backend in vLLM 0.32
    (only the server-wide setting is). A small model can then emit newline after newline
    inside a valid object until max_tokens cuts it off: unbounded, like a grammar with `+`.
    """
    import xgrammar as xgr

    return str(xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False,
                                            strict_mode=True))


def regex(pattern: str) -> Constraint:
    """Output that fully matches `pattern`."""
    return Constraint("regex", pattern)


def choice(options: list[str] | tuple[str, ...]) -> Constraint:
    """Output that is exactly one of `options`."""
    return Constraint("choice", options)


def grammar(ebnf: str) -> Constraint:
    """Output that an EBNF/GBNF grammar (with a `root` rule) accepts."""
    return Constraint("grammar", ebnf)


def from_text(mode: str, text: str) -> Constraint:
    """A constraint from an editor's text: JSON text, a pattern, one choice a line, EBNF."""
    if mode == "choice":
        return choice([line.strip() for line in text.splitlines() if line.strip()])
    if mode == "json":
        return json_schema(text)
    return Constraint(mode, text)  # type: ignore[arg-type]
