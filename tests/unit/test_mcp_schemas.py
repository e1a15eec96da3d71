"""MCP pieces that need no server process: schema conversion, names, the CLI, HTTP refusal."""

from __future__ import annotations

import jsonschema
import pytest

from lab_helpers.cli import build_parser
from lab_helpers.mcp.acme_server import McpServeError, build_server, http_app, is_loopback
from lab_helpers.mcp.agent import narrowed
from lab_helpers.mcp.bridge import McpBridge, McpError, McpServerSpec, strict_parameters
from lab_helpers.support import SupportDesk
from lab_helpers.tools.schema import ToolSpec

READ_FILE = {  # the filesystem server's read_text_file input schema, as it lists it
    "type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
    "properties": {"path": {"type": "string"},
                   "tail": {"type": "number", "description": "last N lines"},
                   "head": {"type": "number", "description": "first N lines"}},
    "required": ["path"]}


def test_strict_parameters_requires_all_and_nulls_optionals():
    strict = strict_parameters(READ_FILE)
    assert strict["required"] == ["path", "tail", "head"]
    assert strict["additionalProperties"] is False
    validator = jsonschema.Draft202012Validator(strict)
    assert validator.is_valid({"path": "/x", "tail": None, "head": None})
    assert not validator.is_valid({"path": "/x"})                    # strict: all present
    assert not validator.is_valid({"path": "/x", "tail": None, "head": None, "mode": 1})
    assert not validator.is_valid({"path": 3, "tail": None, "head": None})


def test_strict_parameters_inlines_refs():
    schema = {"type": "object", "$defs": {"P": {"enum": ["low", "high"], "type": "string"}},
              "properties": {"priority": {"$ref": "#/$defs/P"}}, "required": ["priority"]}
    strict = strict_parameters(schema)
    assert strict["properties"]["priority"] == {"enum": ["low", "high"], "type": "string"}


def test_narrowed_keeps_required_and_adds_enum():
    spec = ToolSpec("filesystem__read_text_file", "read", strict_parameters(READ_FILE),
                    lambda **kw: kw, object)  # type: ignore[arg-type]
    small = narrowed(spec, {"path": ["/docs/a.txt", "/docs/b.txt"]})
    assert small.parameters["required"] == ["path"]
    assert small.parameters["properties"]["path"]["enum"] == ["/docs/a.txt", "/docs/b.txt"]
    assert small.function is spec.function                           # same gated function
    validator = jsonschema.Draft202012Validator(small.parameters)
    assert validator.is_valid({"path": "/docs/a.txt"})
    assert not validator.is_valid({"path": "/etc/passwd"})
    # whatever the narrowed schema accepts, the server's own schema accepts too
    assert jsonschema.Draft7Validator(READ_FILE).is_valid({"path": "/docs/a.txt"})


@pytest.mark.parametrize("name", ["Time", "a__b", "", "x" * 21, "time server", "_t"])
def test_server_names_that_could_collide_are_refused(name):
    with pytest.raises(McpError):
        McpServerSpec.stdio(name, ["true"]).check()


def test_a_spec_needs_exactly_one_of_command_or_url():
    with pytest.raises(McpError):
        McpServerSpec("x").check()
    with pytest.raises(McpError):
        McpServerSpec("x", ("true",), url="http://127.0.0.1:1/mcp").check()


def test_two_servers_with_one_name_are_refused():
    with pytest.raises(McpError, match="share a name"):
        McpBridge([McpServerSpec.stdio("acme", ["a"]), McpServerSpec.http("acme", "http://x")])


def test_http_beyond_loopback_needs_a_token(tmp_path):
    server = build_server(SupportDesk(tmp_path / "a.sqlite"))
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        assert not is_loopback(host)
        with pytest.raises(McpServeError, match="without a token"):
            http_app(server, host=host)
    assert http_app(server, host="0.0.0.0", token="t") is not None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")


def test_cli_parses_the_mcp_commands():
    args = build_parser().parse_args(["mcp", "serve", "--transport", "http", "--port", "9",
                                      "--host", "0.0.0.0", "--token", "T"])
    assert (args.transport, args.port, args.host, args.token) == ("http", 9, "0.0.0.0", "T")
    assert build_parser().parse_args(["mcp", "serve"]).transport == "stdio"
    assert build_parser().parse_args(["mcp", "install", "--force"]).force is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mcp", "serve", "--transport", "sse"])
