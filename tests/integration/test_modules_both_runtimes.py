"""Modules 2-5 against a lab server in the runtime their notebooks do not use under nbval.

The notebooks run under nbval with the default runtime (`choose_runtime`: Podman where it works
and the image is built, else local processes), and modules 1 and 5 run whole once more in the
other runtime (test_whole_notebooks_in_the_other_runtime.py). Modules 2-5 only *use* a running
server, so here each one's core step runs against a chat server of the other runtime: the
shared `local_chat_srv` when the default is Podman; when the default is local
(VLLM_LAB_RUNTIME=local, or no usable Podman), a Podman chat server of this module's own, and a
skip only where Podman is not usable at all (then there is no other runtime). The steps: a
constrained answer that validates in every mode, a tool call executed against the ACME
database, an MCP tool call through the approval gate, and a GuideLLM run read from its own
report. Checked by structure, never by wording. (Both runtimes here as well would repeat what
nbval already ran against the same server: about 70 s.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from lab_helpers import bench, structured
from lab_helpers.mcp.agent import McpAgent
from lab_helpers.mcp.bridge import McpBridge
from lab_helpers.mcp.servers import acme_stdio, time_server
from lab_helpers.structured import StructuredClient
from lab_helpers.structured.presets import (
    REPORT_GRAMMAR,
    REPORT_PROMPT,
    SENTIMENTS,
    TICKET_ID_REGEX,
    TICKET_SCHEMA,
    TICKET_SYSTEM_PROMPT,
    ticket_prompt,
)
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all
from lab_helpers.tools.approval import ApprovalGate, ApprovalPolicy, scripted

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(request):
    """A chat server of the runtime nbval's notebooks did not use (whichever that is)."""
    from lab_helpers import server
    from lab_helpers.paths import port_base
    from lab_helpers.server.config import chat_server
    from lab_helpers.server.podman_cli import image_exists, podman_status

    config = chat_server("cpu")
    default, why = server.choose_runtime(config)
    if default == "podman":
        other = request.getfixturevalue("local_chat_srv")
        assert other.runtime.kind == "local"
        yield other
        return
    usable, reason = podman_status()
    if not usable:
        pytest.skip(f"the notebooks ran as local processes ({why}) and Podman is not usable "
                    f"({reason}): there is no other runtime")
    if not image_exists(config.image):
        pytest.fail(f"the notebooks ran as local processes ({why}); Podman works but the lab "
                    "image is not built: run `vllm-lab build-image` (./lab test does)")
    # The shared chat_srv is the local one here: a Podman twin under its own name and port,
    # stopped when this module ends unless it was already running.
    podman_config = chat_server("cpu", name="chat-podman", port=port_base() + 13)
    was_running = any(i.name == podman_config.name and i.runtime == "podman"
                      for i in server.list_servers())
    other = server.start(podman_config, runtime="podman")
    assert other.runtime.kind == "podman"
    yield other
    if not was_running:
        server.get_runtime("podman").remove(podman_config.name)


def test_module2_every_constraint_validates(srv):
    gen = StructuredClient(srv, max_tokens=200)
    cases = [
        (ticket_prompt("My order ORD-12345 arrived broken, please help."),
         structured.json_schema(TICKET_SCHEMA, name="support_ticket", compact=True),
         TICKET_SYSTEM_PROMPT),
        ("Write a support ticket id.", structured.regex(TICKET_ID_REGEX), None),
        ("The product arrived broken. Sentiment?", structured.choice(list(SENTIMENTS)), None),
        (REPORT_PROMPT, structured.grammar(REPORT_GRAMMAR), None),
    ]
    # All four at once: the server batches them.
    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(lambda case: gen.run(case[0], case[1], system_prompt=case[2]),
                                cases))
    for (_, constraint, _), result in zip(cases, results, strict=True):
        assert result.valid, (constraint.mode, result.text, result.verdict.reason)


def test_module3_a_required_call_runs_against_the_acme_database(srv, tmp_path):
    desk = SupportDesk(tmp_path / "acme.sqlite")
    loop = ToolLoop(srv, ToolExecutor(acme_registry(desk), decide=approve_all), max_tokens=150)
    transcript = loop.run("Where is my order ORD-78432?", tool_choice="required")
    first = transcript.rounds[0]
    assert first.calls and all(r.ran for r in first.results)
    for call in first.calls:
        loop.registry.validate(call)


def test_module4_an_mcp_tool_call_goes_through_the_gate(srv, tmp_path):
    db = tmp_path / "acme.sqlite"
    SupportDesk(db)
    gate = ApprovalGate(ApprovalPolicy(), decide=scripted({}))
    with McpBridge([acme_stdio(db), time_server()]) as bridge:
        agent = McpAgent(srv, bridge, gate, max_tokens=128)
        transcript = agent.ask("What time is it in New York?",
                               tools=["time__get_current_time"], tool_choice="required")
    first = transcript.rounds[0]
    assert [c.name for c in first.calls] and all(c.name == "time__get_current_time"
                                                 for c in first.calls)
    assert all(r.ran for r in first.results)
    decided = gate.frame()
    assert len(decided) and set(decided["tool"]) == {"get_current_time"}


def test_module5_guidellm_runs_and_reports(srv, tmp_path):
    target = bench.Target.from_server(srv, label=srv.runtime.kind)
    load = bench.concurrent([1, 4], max_requests=4, prompt_tokens=32, output_tokens=16)
    run = bench.run_benchmark(target, load, out_dir=tmp_path, progress=False)
    assert list(run.frame["load"]) == [1.0, 4.0]
    assert (run.frame["requests_ok"] >= 3).all() and (run.frame["requests_errored"] == 0).all()
    assert (run.frame["output_tokens_per_s"] > 0).all()
    assert srv.api_key not in run.json_path.read_text()
