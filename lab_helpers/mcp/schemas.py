"""MCP input schemas in OpenAI's strict form: what makes vLLM hold the model to them.

An MCP server lists each tool's `inputSchema` as plain JSON Schema (optional properties left
out of `required`, `$ref`s to `$defs`); `strict_parameters` rewrites it the way module 3's
own tools are written (`lab_helpers.tools.schema`).
"""

from __future__ import annotations

from typing import Any

from ..tools.schema import inline_refs, strict_node


def strict_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    """An MCP input schema in OpenAI's strict form (what makes vLLM constrain the arguments):
    every property required, optional ones nullable, no extra properties, `$ref`s inlined."""
    defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
    schema = inline_refs({k: v for k, v in schema.items() if k not in ("$defs", "definitions")},
                         defs)
    required = set(schema.get("required", []))
    props = {}
    for key, sub in (schema.get("properties") or {}).items():
        sub = strict_node(sub, close_free_objects=False)
        if key not in required and not _nullable(sub):
            sub = {"anyOf": [sub, {"type": "null"}]}
        props[key] = sub
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def _nullable(node: dict[str, Any]) -> bool:
    return node.get("type") == "null" or any(
        isinstance(o, dict) and o.get("type") == "null" for o in node.get("anyOf", []))
