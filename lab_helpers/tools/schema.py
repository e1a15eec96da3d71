"""A typed Python function -> an OpenAI tool definition with a *strict* JSON schema.

    spec = tool_spec(desk.get_order_status)
    spec.definition()   # {"type": "function", "function": {"name": ..., "strict": True, ...}}

pydantic reads the signature (types, `Literal`, `Enum`, `Annotated[..., Field(...)]`, optional
parameters) and writes the JSON schema; the same pydantic model later turns validated JSON
arguments into the Python values the function expects (an `Enum` member, not its string).
The schema is then made *strict* the way OpenAI defines it, because that is what makes vLLM
constrain the arguments (ENVIRONMENT.md: without `"strict": true` SmolLM2 echoed the schema):

- every property is listed in `required`; an optional parameter is a union with `null` instead
  (the executor drops nulls, so the function's own default applies);
- `additionalProperties: false` on every object; no `default`, no `title`;
- `$ref`s to `$defs` (pydantic's form for Enums) are inlined, so each property reads on its own.

Descriptions come from the docstring: its first paragraph describes the tool, its `Args:`
section the parameters (Google style), unless a `Field(description=...)` says otherwise.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

import docstring_parser
from pydantic import BaseModel, ConfigDict, create_model

from ..errors import LabError

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class ToolDefinitionError(LabError, TypeError):
    """A function cannot become a tool (missing type hint, *args, unsupported name)."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool: the function, its strict parameter schema and the model that coerces args."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    arguments_model: type[BaseModel]
    writes: bool = False
    """True for tools that change something: the executor asks before running them."""

    def definition(self) -> dict[str, Any]:
        """The entry for the `tools=[...]` list of a chat completion request."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": self.parameters, "strict": True}}


def tool_spec(function: Callable[..., Any], *, name: str | None = None,
              writes: bool = False) -> ToolSpec:
    """Build the ToolSpec of a typed, documented function (or bound method)."""
    name = name or getattr(function, "__name__", "")
    if not NAME_PATTERN.match(name):
        raise ToolDefinitionError(f"{name!r} cannot be a tool name.",
                                  cause="tool names are letters, digits, _ and - (max 64)",
                                  fix="pass name='a_valid_name' to ToolRegistry.register")
    doc = inspect.getdoc(function) or ""
    summary, arg_docs = parse_docstring(doc)
    if not summary:
        raise ToolDefinitionError(f"{name} has no docstring.",
                                  cause="the model picks tools by their description",
                                  fix="write a docstring: one line on what the tool is for")
    model = arguments_model(function, name, arg_docs)
    return ToolSpec(name=name, description=summary, parameters=strict_schema(model),
                    function=function, arguments_model=model, writes=writes)


def arguments_model(function: Callable[..., Any], name: str,
                    arg_docs: dict[str, str] | None = None) -> type[BaseModel]:
    """A pydantic model with one field per parameter, forbidding extra fields."""
    try:
        hints = get_type_hints(function, include_extras=True)
    except NameError as exc:
        raise ToolDefinitionError(f"The type hints of {name} cannot be resolved: {exc}.",
                                  fix="import the types the signature uses in its module") \
            from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"{name} takes *{param.name}: a tool needs named "
                                      "parameters.", fix="list the parameters one by one")
        if param.name not in hints:
            raise ToolDefinitionError(f"Parameter {param.name!r} of {name} has no type hint.",
                                      cause="the JSON schema is made from the type hints",
                                      fix=f"annotate it, e.g. `{param.name}: str`")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    for field_name, text in (arg_docs or {}).items():
        info = model.model_fields.get(field_name)
        if info is not None and not info.description:
            info.description = text
    model.model_rebuild(force=True)
    return model


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in OpenAI's strict form (see the module docstring)."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    schema = strict_node(inline_refs(raw, defs))
    schema.pop("description", None)
    return schema


def inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with every `$ref` to `defs` replaced by its target (an unknown one by {})."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return inline_refs(merged, defs)
        return {k: inline_refs(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(v, defs) for v in node]
    return node


def strict_node(node: Any, *, close_free_objects: bool = True) -> Any:
    """`node` in strict form: every object's properties required, no extra properties, no
    titles or defaults. `close_free_objects=False` leaves an object without `properties`
    (a free-form dict, as some MCP servers declare) open instead of closing it to {}."""
    if isinstance(node, list):
        return [strict_node(v, close_free_objects=close_free_objects) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: ({name: strict_node(sub, close_free_objects=close_free_objects)
                for name, sub in v.items()} if k == "properties"
               else strict_node(v, close_free_objects=close_free_objects))
           for k, v in node.items() if k not in ("title", "default", "$schema")}
    is_object, has_props = out.get("type") == "object", "properties" in out
    if (is_object and has_props) or (close_free_objects and (is_object or has_props)):
        out["type"] = "object"
        out.setdefault("properties", {})
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a docstring (docstring_parser: Google,
    reST, NumPy or Epydoc style, detected). The description is the text before the sections,
    one line per paragraph; each parameter's text is joined into one line."""
    parsed = docstring_parser.parse(doc)
    paragraphs = (parsed.description or "").split("\n\n")
    description = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return description, {p.arg_name.lstrip("*"): " ".join((p.description or "").split())
                         for p in parsed.params}
