"""The tools a conversation offers, and the check every tool call's arguments must pass.

    registry = ToolRegistry()
    registry.register(desk.get_order_status)
    registry.register(desk.create_ticket, writes=True)
    registry.definitions()                      # -> tools=[...] of a chat completion request
    registry.validate(call)                     # -> the function's keyword arguments, or raises

Validation is jsonschema against the very schema the server was given (what vLLM constrained is
what we check), then pydantic turns the JSON values into the function's types. A model that
writes `{"order_id": 78432}` (ENVIRONMENT.md: the parser pulled that out of prose once) gets an
`InvalidArguments` error, and nothing runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from pydantic import ValidationError

from ..errors import LabError
from .schema import ToolSpec, tool_spec


@dataclass(frozen=True)
class ToolCall:
    """One call as the model wrote it: `arguments` is the raw JSON text, unparsed."""

    name: str
    arguments: str
    id: str = ""

    @classmethod
    def from_openai(cls, call: Any) -> ToolCall:
        """From an `openai` ChatCompletionMessageToolCall (or its dict form)."""
        if isinstance(call, dict):
            fn = call.get("function") or {}
            return cls(fn.get("name") or "", fn.get("arguments") or "", call.get("id") or "")
        return cls(call.function.name or "", call.function.arguments or "", call.id or "")

    def message_part(self) -> dict[str, Any]:
        """The entry of an assistant message's `tool_calls` list."""
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


class ToolCallError(LabError):
    """A tool call was refused before anything ran. `kind` says why, for tables and tests."""

    kind = "error"


class UnknownTool(ToolCallError):
    kind = "unknown_tool"


class InvalidArguments(ToolCallError):
    kind = "invalid_arguments"

    def __init__(self, what: str, *, problems: list[str] | None = None, **kwargs: str) -> None:
        self.problems = list(problems or [])
        super().__init__(what, **kwargs)


@dataclass
class ToolRegistry:
    """Tools by name. Register typed, documented functions; `writes=True` marks the ones that
    change something (the executor asks for a decision before running those)."""

    _tools: dict[str, ToolSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, functions: Iterable[Callable[..., Any]], *,
           writes: Iterable[str] = ()) -> ToolRegistry:
        """A registry of several functions; `writes` names those that change something."""
        registry = cls()
        writes = set(writes)
        for function in functions:
            registry.register(function, writes=function.__name__ in writes)
        return registry

    def register(self, function: Callable[..., Any], *, name: str | None = None,
                 writes: bool = False) -> ToolSpec:
        return self.add(tool_spec(function, name=name, writes=writes))

    def add(self, spec: ToolSpec) -> ToolSpec:
        """Register a ready-made spec (an MCP server's tool, a gated copy of a function)."""
        if spec.name in self._tools:
            raise ValueError(f"a tool named {spec.name!r} is already registered")
        self._tools[spec.name] = spec
        return spec

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> ToolSpec:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(f"There is no tool named {name!r}.",
                              cause=f"the tools are: {', '.join(self._tools) or 'none'}",
                              fix="call one of the listed tools by its exact name") from None

    def definitions(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """`tools=[...]` for a request: every tool, or only `names`."""
        chosen = self._tools if names is None else [self.get(n).name for n in names]
        return [self._tools[n].definition() for n in chosen]

    def validate(self, call: ToolCall) -> dict[str, Any]:
        """The keyword arguments to call the tool with, or UnknownTool / InvalidArguments.

        Nulls (an optional parameter left out, in strict form) are dropped so the function's
        default applies.
        """
        spec = self.get(call.name)
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidArguments(f"The arguments of {call.name} are not JSON: {exc.msg}.",
                                   problems=[str(exc)],
                                   fix="send the arguments as one JSON object") from None
        validator = jsonschema.Draft202012Validator(spec.parameters)
        problems = sorted(_describe(e) for e in validator.iter_errors(args))
        if problems:
            raise InvalidArguments(f"The arguments of {call.name} do not match its schema.",
                                   problems=problems, cause="; ".join(problems),
                                   fix="correct the arguments as the problems say")
        try:
            model = spec.arguments_model.model_validate(
                {k: v for k, v in args.items() if v is not None})
        except ValidationError as exc:  # a constraint jsonschema and pydantic read differently
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
            raise InvalidArguments(f"The arguments of {call.name} are not valid.",
                                   problems=problems, cause="; ".join(problems),
                                   fix="correct the arguments as the problems say") from None
        return {name: getattr(model, name) for name in spec.arguments_model.model_fields
                if name in model.model_fields_set}


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "arguments"
    return f"{where}: {error.message}"
