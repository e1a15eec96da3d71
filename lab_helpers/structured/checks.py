"""Checks for each kind of structured-output spec, run before anything is sent, and their errors.

`check_schema` (jsonschema's meta-schema, plus references and keywords vLLM cannot use),
`check_regex` (Python's `re` and xgrammar, vLLM's default backend), `check_choice` and
`check_grammar` (xgrammar's EBNF parser) return the spec as it will be sent, or raise an
`InvalidSchema` / `InvalidRegex` / `InvalidChoice` / `InvalidGrammar` (all `ConstraintError`)
saying where the spec is wrong and how to fix it. `constraints.Constraint` runs them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from ..errors import LabError

Mode = Literal["json", "regex", "choice", "grammar"]
MODES: tuple[Mode, ...] = ("json", "regex", "choice", "grammar")

_XGR_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")  # "[19:57:13] /project/cpp/x.cc:83: "


class StructuredError(LabError):
    """A structured-output request could not be made or answered."""


class ConstraintError(StructuredError, ValueError):
    """A constraint is malformed: nothing was sent. `mode` and `where` say what and where.

    `edit_fix` is the fix for someone typing the constraint into the schema editor, where a
    Python call (`structured.choice([...])`) means nothing: `for_editor()` is the same error
    with that fix."""

    def __init__(self, what: str, *, mode: str, where: str = "", edit_fix: str = "",
                 **kwargs: str) -> None:
        self.mode = mode
        self.where = where
        self.edit_fix = edit_fix
        super().__init__(what, **kwargs)

    def for_editor(self) -> ConstraintError:
        """This error as the schema editor shows it: the fix says what to change in its text."""
        if not self.edit_fix:
            return self
        return type(self)(self.what, mode=self.mode, where=self.where, cause=self.cause,
                          fix=self.edit_fix, details=self.details)


class InvalidSchema(ConstraintError):
    """The JSON schema is not valid JSON, or not a valid JSON Schema."""


class InvalidRegex(ConstraintError):
    """The regex does not compile (in Python's re or in the server's regex engine)."""


class InvalidChoice(ConstraintError):
    """The choice list is empty, or holds something other than distinct non-empty strings."""


class InvalidGrammar(ConstraintError):
    """The grammar does not parse as EBNF/GBNF."""


def _xgr_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _XGR_PREFIX.sub("", text)


# -- the checks -----------------------------------------------------------------------------------


def _schema_from(schema: Any) -> dict[str, Any]:
    """A dict, a pydantic model class or JSON text -> the schema dict (not yet checked)."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise InvalidSchema(
                f"The JSON schema is not valid JSON: {exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}.",
                mode="json", where=f"line {exc.lineno}, column {exc.colno}",
                fix="correct the JSON text there (quotes around keys, no trailing commas)",
            ) from None
    elif isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()
    if not isinstance(schema, dict):
        raise InvalidSchema(
            f"A JSON schema must be a JSON object (a dict), not {type(schema).__name__}.",
            mode="json", where="the top level",
            fix='pass a dict such as {"type": "object", "properties": {...}} or a pydantic '
                "model class to structured.json_schema(...)",
            edit_fix='write one object in curly braces, e.g. {"type": "object", '
                     '"properties": {"name": {"type": "string"}}}',
        )
    return schema


def check_schema(schema: Any) -> dict[str, Any]:
    """The schema as a dict, or InvalidSchema saying what is wrong and where."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    schema = _schema_from(schema)
    try:
        json.dumps(schema)
    except (TypeError, ValueError) as exc:
        raise InvalidSchema(f"The JSON schema holds a value JSON cannot carry: {exc}.",
                            mode="json", where="a value of the dict",
                            fix="use only dicts, lists, strings, numbers, booleans and None"
                            ) from None
    if not schema:
        raise InvalidSchema(
            "The JSON schema is empty ({}): it allows any JSON value, so it constrains nothing.",
            mode="json", where="the top level",
            fix='give at least a "type", e.g. {"type": "object", "properties": {...}}')
    validator = validator_for(schema)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        what, fix = plain_schema_problem(exc)
        raise InvalidSchema(
            f"The JSON schema is invalid at {_plain_path(exc.path)}: {what}.",
            mode="json", where=exc.json_path,
            cause="JSON Schema allows only certain values for each keyword",
            fix=fix,
        ) from None
    dangling = _unresolvable_ref(schema, validator)
    if dangling:
        where, ref = dangling
        raise InvalidSchema(
            f"The JSON schema's $ref {ref!r} at {where} points nowhere: no part of the schema "
            "has that address.",
            mode="json", where=where,
            cause="a typo in the path, a definition that was renamed or removed, or a "
                  "reference to another document (the lab sends one self-contained schema)",
            fix="point the $ref at a definition that exists (e.g. '#/$defs/Name') or add the "
                "definition")
    unknown = _unknown_keywords(schema, set(validator.VALIDATORS) | _ANNOTATIONS)
    if unknown:
        where, key = unknown
        raise InvalidSchema(
            f"The JSON schema has an unknown keyword {key!r} at {where}: a validator ignores "
            "it, so the constraint would be weaker than it looks.",
            mode="json", where=where,
            cause="a typo (e.g. 'requird' for 'required') or a keyword of another draft",
            fix="correct the keyword's name (or remove it)")
    return schema


_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_AS = {"array": 'a list in square brackets, e.g. ["a", "b"]',
       "object": 'an object in curly braces, e.g. {"name": {"type": "string"}}',
       "number": "a number without quotes, e.g. 3", "integer": "a whole number, e.g. 3",
       "string": 'text in double quotes, e.g. "name"', "boolean": "true or false, no quotes"}


def _plain_path(path: Any) -> str:
    parts = [str(p) if isinstance(p, str) else f"item {p + 1}" for p in path]
    return " → ".join(f'"{p}"' if not p.startswith("item ") else p for p in parts) \
        or "the top level"


def plain_schema_problem(exc: Any) -> tuple[str, str]:
    """(what is wrong, how to fix it) for a jsonschema SchemaError, in words, not in the
    validator's terms ("is not valid under any of the given schemas", "keyword 'anyOf'")."""
    keys = [p for p in exc.path if isinstance(p, str)]
    key = keys[-1] if keys else ""
    shown = json.dumps(exc.instance, ensure_ascii=False)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    expected = exc.validator_value
    if key == "type" and exc.validator in ("anyOf", "enum"):
        return (f"{shown} is not a type JSON Schema knows",
                "use one of " + ", ".join(f'"{t}"' for t in _TYPES) + " (or a list of them)")
    if exc.validator == "type":
        wanted = expected if isinstance(expected, str) else expected[0]
        words = _AS.get(wanted, f"a {wanted}")
        return (f'the value of "{key}" must be {words.split(", e.g.")[0]}, not {shown}',
                f'write "{key}" as {words}')
    if exc.validator == "minimum":
        return (f'"{key}" must be {expected} or more, not {shown}',
                f'give "{key}" a value of at least {expected}')
    if exc.validator == "format" and expected == "regex":
        return (f'"{key}" is not a regular expression that works ({shown})',
                "correct the pattern (escape literal ( ) [ ] { } . + * ? with \\)")
    return (f'"{key or "the schema"}" has a value JSON Schema does not allow ({shown})',
            f'correct the value of "{key}" (see the JSON Schema reference for that keyword)'
            if key else "correct the schema there")


_ANNOTATIONS = {
    "title", "description", "default", "examples", "$schema", "$id", "$defs", "definitions",
    "$ref", "$comment", "$anchor", "$vocabulary", "$dynamicRef", "$dynamicAnchor", "format",
    "readOnly", "writeOnly", "deprecated", "contentMediaType", "contentEncoding",
    "contentSchema", "discriminator", "nullable",
}
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
               "propertyNames", "unevaluatedItems", "unevaluatedProperties",
               "additionalItems")


def _unresolvable_ref(schema: dict[str, Any], validator: Any) -> tuple[str, str] | None:
    """(path, ref) of the first `$ref` that does not resolve inside the schema itself.

    Resolved with `referencing` (jsonschema's own resolver), in the draft the validator is
    for, with an empty registry: a reference to another document counts as pointing nowhere.
    """
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable

    spec = validator.META_SCHEMA  # the draft's own meta-schema names the specification
    resource = Resource.from_contents(schema, default_specification=_specification(spec))
    resolver = Registry().resolver_with_root(resource)

    def walk(node: Any, where: str, scope: Any) -> tuple[str, str] | None:
        if isinstance(node, list):  # `items` as a list (older drafts)
            return next((f for i, sub in enumerate(node)
                         if (f := walk(sub, f"{where}[{i}]", scope))), None)
        if not isinstance(node, dict):
            return None
        if isinstance(node.get("$id"), str) and where != "$":
            scope = scope.in_subresource(resource.specification.create_resource(node))
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                scope.lookup(ref)
            except Unresolvable:
                return f"{where}.$ref", ref
        for path, sub in _subschemas(node, where):
            found = walk(sub, path, scope)
            if found:
                return found
        return None

    return walk(schema, "$", resolver)


def _specification(meta_schema: dict[str, Any]) -> Any:
    from referencing.jsonschema import DRAFT202012, specification_with

    return specification_with(meta_schema.get("$schema", ""), default=DRAFT202012)


def _unknown_keywords(schema: Any, known: set[str], where: str = "$") -> tuple[str, str] | None:
    """(path, keyword) of the first keyword no draft knows, walking every subschema."""
    if not isinstance(schema, dict):
        return None
    for key in schema:
        if key not in known:
            return where, key
    for path, sub in _subschemas(schema, where):
        found = _unknown_keywords(sub, known, path)
        if found:
            return found
    return None


def _subschemas(schema: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    """(path, subschema) for every schema-valued keyword of one schema object."""
    subschemas: list[tuple[str, Any]] = []
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            subschemas += [(f"{where}.{key}.{name}", sub) for name, sub in schema[key].items()]
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            subschemas += [(f"{where}.{key}[{i}]", sub) for i, sub in enumerate(schema[key])]
    for key in _SCHEMA_ONE:
        if key in schema:
            subschemas.append((f"{where}.{key}", schema[key]))
    return subschemas


def check_regex(pattern: Any) -> str:
    """The pattern, or InvalidRegex with the position of the problem."""
    if not isinstance(pattern, str):
        raise InvalidRegex(f"A regex must be a string, not {type(pattern).__name__}.",
                           mode="regex", where="the pattern",
                           fix=r'pass a string, e.g. structured.regex(r"ACME-[A-Z]{4}-[0-9]{4}")')
    if not pattern:
        raise InvalidRegex("The regex is empty: it only matches empty output.",
                           mode="regex", where="the pattern",
                           fix=r'write the pattern, e.g. structured.regex(r"[0-9]{4}")',
                           edit_fix=r"write the pattern, e.g. ACME-[0-9]{4}")
    try:
        re.compile(pattern)
    except re.error as exc:
        pos = exc.pos if exc.pos is not None else 0
        raise InvalidRegex(
            f"The regex does not compile: {exc.msg} at position {pos}.\n  {pattern}\n  "
            + " " * pos + "^",
            mode="regex", where=f"position {pos}",
            fix="correct the pattern there (escape literal ( ) [ ] { } . + * ? with \\)",
        ) from None
    if "\x00" in pattern:
        raise InvalidRegex("The regex holds a NUL character, which vLLM refuses.",
                           mode="regex", where=f"position {pattern.index(chr(0))}",
                           fix="remove the NUL character (\\x00) from the pattern")
    import xgrammar as xgr

    try:
        xgr.Grammar.from_regex(pattern)
    except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError with its message
        message = _xgr_message(exc)
        found = re.search(r"position (\d+)", message)
        raise InvalidRegex(
            f"vLLM's regex engine (xgrammar) cannot use this regex: {message}",
            mode="regex", where=f"position {found.group(1)}" if found else "the pattern",
            cause="Python accepts it, but constrained decoding supports no lookaround and no "
                  "backreferences",
            fix="rewrite the pattern without that construct (no (?=...), (?!...), (?<=...) "
                "and no \\1 back-references)",
        ) from None
    return pattern


def check_choice(options: Any) -> tuple[str, ...]:
    """The options as a tuple, or InvalidChoice naming the bad item."""
    if isinstance(options, str) or not isinstance(options, list | tuple):
        raise InvalidChoice(
            f"The choices must be a list of strings, not {type(options).__name__}.",
            mode="choice", where="the choice list",
            fix='pass a list, e.g. structured.choice(["positive", "negative", "neutral"])')
    if not options:
        raise InvalidChoice("The choice list is empty: there is nothing to choose from.",
                            mode="choice", where="the choice list",
                            fix='give at least one option, e.g. structured.choice(["yes", "no"])',
                            edit_fix="write at least one option, one per line")
    seen: set[str] = set()
    for i, option in enumerate(options):
        if not isinstance(option, str):
            raise InvalidChoice(f"Choice #{i + 1} is {option!r}, not a string.",
                                mode="choice", where=f"item {i + 1}",
                                fix="quote it: every choice is a string")
        if not option.strip():
            raise InvalidChoice(f"Choice #{i + 1} is empty.", mode="choice",
                                where=f"item {i + 1}", fix="remove it or give it text")
        if option in seen:
            raise InvalidChoice(f"Choice #{i + 1} ({option!r}) is listed twice.",
                                mode="choice", where=f"item {i + 1}", fix="remove the duplicate")
        seen.add(option)
    return tuple(options)


def check_grammar(grammar: Any) -> str:
    """The grammar, or InvalidGrammar with line and column from xgrammar's EBNF parser."""
    if not isinstance(grammar, str) or not grammar.strip():
        raise InvalidGrammar("The grammar is empty.", mode="grammar", where="the grammar",
                             fix='write rules, starting with root ::= ..., e.g. '
                                 'structured.grammar(\'root ::= "yes" | "no"\')',
                             edit_fix='write rules, starting with root ::= ..., e.g. '
                                      'root ::= "yes" | "no"')
    if "::=" not in grammar:
        raise InvalidGrammar(
            "The grammar has no `::=` rule: the lab takes EBNF/GBNF (`root ::= ...`).",
            mode="grammar", where="the grammar",
            cause="this may be a Lark grammar (`start: ...`); vLLM would hand that to another "
                  "parser, and the lab could not validate answers against it",
            fix='write it in EBNF: root ::= "## REPORT START ##\\n" section+ ...')
    import xgrammar as xgr

    try:
        xgr.Grammar.from_ebnf(grammar)
    except Exception as exc:  # noqa: BLE001 - xgrammar raises RuntimeError with its message
        message = _xgr_message(exc)
        found = re.search(r"line (\d+), column (\d+)", message)
        raise InvalidGrammar(
            f"The grammar does not parse: {message}",
            mode="grammar",
            where=f"line {found.group(1)}, column {found.group(2)}" if found else "the grammar",
            fix="correct the rule there: strings in double quotes, every rule used is defined, "
                "and a rule named root",
        ) from None
    return grammar
