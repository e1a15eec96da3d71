"""MCP pieces that need no server process: schemas, names, trust, tokens, the CLI, HTTP checks."""

from __future__ import annotations

import jsonschema
import pytest

from lab_helpers.cli.main import build_parser
from lab_helpers.mcp.acme_server import McpServeError, build_server, http_app, own_addresses
from lab_helpers.mcp.agent import narrowed
from lab_helpers.mcp.bridge import McpBridge, McpError, McpServerSpec, strict_parameters
from lab_helpers.mcp.servers import acme_stdio, time_server
from lab_helpers.mcp.tokens import TokenFileError, default_token_file, ensure_token, read_token
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


def test_http_always_needs_a_token(tmp_path):
    server = build_server(SupportDesk(tmp_path / "a.sqlite"))
    for host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "192.0.2.10"):
        with pytest.raises(McpServeError, match="without a token"):
            http_app(server, host=host, port=8931, token="")
    assert http_app(server, host="127.0.0.1", port=8931, token="t") is not None


@pytest.mark.parametrize("host,extra", [
    ("127.0.0.1", []), ("0.0.0.0", []), ("::", []),
    ("192.0.2.10", ["192.0.2.10:8931"]), ("2001:db8::1", ["[2001:db8::1]:8931"])])
def test_http_allows_exactly_its_own_hosts_and_origins(host, extra):
    hosts, origins = own_addresses(host, 8931)
    assert hosts == ["127.0.0.1:8931", "localhost:8931", "[::1]:8931", *extra]
    assert origins == [f"http://{h}" for h in hosts] + [f"https://{h}" for h in extra]
    assert not any("*" in value for value in hosts + origins)       # no prefix patterns


def test_the_token_file_is_owner_only_and_kept(lab_home):
    path = ensure_token()
    assert path == default_token_file() and path.parent.is_relative_to(lab_home)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    token = read_token(path)
    assert len(token) >= 32 and ensure_token(path) == path and read_token(path) == token
    other = ensure_token(lab_home / "elsewhere" / "acme.token")     # a file of one's own
    assert read_token(other) != token and other.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(TokenFileError, match="other users"):
        read_token(path)
    with pytest.raises(TokenFileError, match="No MCP token file"):
        read_token(lab_home / "missing.token")


def test_an_http_spec_reads_its_token_from_the_file_and_never_shows_it(lab_home):
    path = ensure_token()
    spec = McpServerSpec.http("acme", "http://127.0.0.1:1/mcp", token_file=path)
    token = read_token(path)
    assert spec.headers() == {"Authorization": f"Bearer {token}"}
    assert token not in repr(spec)
    assert token not in repr(McpServerSpec.http("x", "http://127.0.0.1:1/mcp", token=token))


def test_only_the_labs_own_servers_are_trusted_by_default():
    assert acme_stdio().trusted and time_server().trusted
    assert not McpServerSpec.stdio("mine", ["true"]).trusted
    assert not McpServerSpec.http("mine", "http://127.0.0.1:1/mcp").trusted
    assert McpServerSpec.stdio("mine", ["true"], trusted=True).trusted
    assert not time_server(trusted=False).trusted


def test_cli_parses_the_mcp_commands():
    args = build_parser().parse_args(["mcp", "serve", "--transport", "http", "--port", "9",
                                      "--host", "0.0.0.0", "--token-file", "/run/t"])
    assert (args.transport, args.port, args.host, args.token_file) == ("http", 9, "0.0.0.0",
                                                                       "/run/t")
    assert build_parser().parse_args(["mcp", "serve"]).token_file is None
    with pytest.raises(SystemExit):                 # a token on the command line: never
        build_parser().parse_args(["mcp", "serve", "--transport", "http", "--token", "T"])
    assert build_parser().parse_args(["mcp", "serve"]).transport == "stdio"
    assert build_parser().parse_args(["mcp", "install", "--force"]).force is True
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mcp", "serve", "--transport", "sse"])
