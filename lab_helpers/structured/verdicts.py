"""Is an answer what the constraint asked for? Checked by the client, never taken on trust.

The server does not report whether a constraint was applied: a field it ignores (such as the
old `guided_json`) gives HTTP 200 and free text. So every answer the lab gets back is checked
again on this side with an independent implementation: jsonschema for JSON, `re.fullmatch` for a
regex, membership for a choice, and xgrammar's matcher (the library vLLM uses, driven here
without a tokenizer, character by character) for a grammar.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .constraints import Constraint

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


@dataclass(frozen=True)
class Verdict:
    """The check of one answer. `parsed` is for JSON: the whole answer parsed as JSON."""

    valid: bool
    reason: str
    parsed: bool = False
    value: Any = None
    """The parsed JSON (JSON mode), else the text itself when valid."""

    def summary(self) -> str:
        return ("valid" if self.valid else "invalid") + (f": {self.reason}" if self.reason else "")


def _cut(finish_reason: str | None) -> str:
    return " (the answer was cut at max_tokens)" if finish_reason == "length" else ""


def verdict(constraint: Constraint, text: str, *, finish_reason: str | None = None) -> Verdict:
    check = {"json": _json, "regex": _regex, "choice": _choice, "grammar": _grammar}
    return check[constraint.mode](constraint.spec, text, finish_reason)


def _json(schema: dict[str, Any], text: str, finish_reason: str | None) -> Verdict:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Verdict(False, f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
                       + _cut(finish_reason))
    validator = validator_for(schema)(schema)
    error = best_match(validator.iter_errors(value))
    if error is not None:
        return Verdict(False, f"JSON, but not schema-valid at {error.json_path}: "
                       f"{error.message}", parsed=True, value=value)
    return Verdict(True, "", parsed=True, value=value)


def _regex(pattern: str, text: str, finish_reason: str | None) -> Verdict:
    if re.fullmatch(pattern, text):
        return Verdict(True, "", value=text)
    prefix = re.match(pattern, text)
    how = (f"only the first {len(prefix.group(0))} characters match" if prefix and prefix.group(0)
           else "it does not match from the start")
    return Verdict(False, f"{text[:60]!r} does not fully match {pattern}: {how}"
                   + _cut(finish_reason))


def _choice(options: tuple[str, ...], text: str, finish_reason: str | None) -> Verdict:
    if text in options:
        return Verdict(True, "", value=text)
    return Verdict(False, f"{text[:60]!r} is not one of {list(options)}" + _cut(finish_reason))


@functools.lru_cache(maxsize=32)
def _compiled_grammar(ebnf: str) -> Any:
    import xgrammar as xgr

    # An empty vocabulary: the matcher then accepts strings, not tokens.
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False)
    return compiler.compile_grammar(xgr.Grammar.from_ebnf(ebnf))


def grammar_accepts(ebnf: str, text: str) -> tuple[bool, str]:
    """(accepted, reason): does the grammar accept the whole of `text`?"""
    import xgrammar as xgr

    matcher = xgr.GrammarMatcher(_compiled_grammar(ebnf), terminate_without_stop_token=True)
    for i, char in enumerate(text):
        if not matcher.accept_string(char):
            line = text.count("\n", 0, i) + 1
            return False, f"rejected at character {i} (line {line}): {text[max(0, i - 20):i + 1]!r}"
    if not matcher.is_terminated():
        return False, "incomplete: the grammar expects more after the last character"
    return True, ""


def _grammar(ebnf: str, text: str, finish_reason: str | None) -> Verdict:
    accepted, reason = grammar_accepts(ebnf, text)
    if accepted:
        return Verdict(True, "", value=text)
    return Verdict(False, reason + _cut(finish_reason))


def extract_json(text: str) -> Any:
    """The JSON a lenient reader would find in a chatty answer (a ```json fence, or the span
    from the first { to the last }); None if there is none. For comparison only: a program
    that expects JSON gets the whole answer."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    if "{" in text and "}" in text:
        candidates.append(text[text.index("{"):text.rindex("}") + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None
