"""Tool definitions from typed functions: types, enums, optionals, docstrings, strict form."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

import jsonschema
import pytest
from pydantic import Field

from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolDefinitionError, acme_registry, tool_spec
from lab_helpers.tools.schema import parse_docstring


class Color(Enum):
    red = "red"
    green = "green"


def sample(text: str, count: int, ratio: float, flag: bool, tags: list[str],
           mode: Literal["fast", "slow"], color: Color, note: str | None = None,
           limit: Annotated[int, Field(ge=1, le=5)] = 3) -> dict:
    """Do a sample thing.

    A second paragraph that says more.

    Args:
        text: Some text.
        count: How many, as a whole
            number (continued line).
        ratio: A fraction.
        flag: On or off.
        tags: Labels.
        mode: Which way.
        color: A colour.
        note: Optional remark.
        limit: At most this many.

    Returns:
        Nothing useful.
    """
    return {}


def test_types_map_to_json_schema():
    props = tool_spec(sample).parameters["properties"]
    assert props["text"]["type"] == "string"
    assert props["count"]["type"] == "integer"
    assert props["ratio"]["type"] == "number"
    assert props["flag"]["type"] == "boolean"
    assert props["tags"] == {"type": "array", "items": {"type": "string"},
                             "description": "Labels."}
    assert props["limit"]["minimum"] == 1 and props["limit"]["maximum"] == 5


def test_literal_and_enum_become_enums():
    props = tool_spec(sample).parameters["properties"]
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert props["color"]["enum"] == ["red", "green"]
    assert "$ref" not in str(tool_spec(sample).parameters)


def test_schema_is_strict():
    spec = tool_spec(sample)
    params = spec.parameters
    assert params["additionalProperties"] is False
    assert params["required"] == list(params["properties"])  # optionals too, in strict form
    note = params["properties"]["note"]
    assert {"type": "null"} in note["anyOf"] and {"type": "string"} in note["anyOf"]
    assert "default" not in str(params) and "title" not in params
    assert spec.definition()["function"]["strict"] is True
    jsonschema.Draft202012Validator.check_schema(params)


def test_docstring_gives_descriptions():
    spec = tool_spec(sample)
    assert spec.description == "Do a sample thing.\n\nA second paragraph that says more."
    props = spec.parameters["properties"]
    assert props["count"]["description"] == "How many, as a whole number (continued line)."
    assert props["note"]["description"] == "Optional remark."
    assert "Returns" not in spec.description


def test_parse_docstring_without_args():
    assert parse_docstring("Only a line.") == ("Only a line.", {})


def test_functions_that_cannot_be_tools():
    def untyped(x):
        """Doc."""

    def undocumented(x: int):
        pass

    def star(*args: int):
        """Doc."""

    for fn in (untyped, undocumented, star):
        with pytest.raises(ToolDefinitionError):
            tool_spec(fn)
    with pytest.raises(ToolDefinitionError):
        tool_spec(sample, name="has space")


def test_acme_tools(tmp_path):
    registry = acme_registry(SupportDesk(tmp_path / "a.sqlite"))
    assert registry.names == ["get_order_status", "get_customer_info", "schedule_callback",
                              "search_products", "create_ticket"]
    writes = {n for n in registry.names if registry.get(n).writes}
    assert writes == {"schedule_callback", "create_ticket"}
    search = registry.get("search_products").parameters["properties"]
    assert search["category"]["enum"] == ["electronics", "clothing", "home", "sports", "all"]
    order = registry.get("get_order_status").parameters["properties"]["order_id"]
    assert order["pattern"] == "^ORD-[0-9]{5}$"
    assert "self" not in registry.get("get_order_status").parameters["properties"]
    ticket = registry.get("create_ticket").parameters["properties"]["priority"]
    assert ticket["enum"] == ["low", "normal", "high", "urgent"]
    for definition in registry.definitions():
        jsonschema.Draft202012Validator.check_schema(definition["function"]["parameters"])
