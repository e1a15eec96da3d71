"""Module 5's tuned CPU configuration (int8 weights + torch.compile) on a real server.

`benchmarks/throughput.py` measures how fast it is; this checks that it is the configuration it
claims to be and that its answers still have the structure modules 2 and 3 rely on: a required
tool call names an ACME tool with valid arguments and runs against the backend, and JSON tickets
validate against their schema. One fresh server, started through `bench.run_variant` exactly
as module 5's full-size run starts it: the automatic runtime, which is a local process (g++ on
the host) unless the compiler image is built (`vllm-lab build-image --compiler`).
Also the rule that keeps benchmark servers apart: a live benchmark's server refuses a second
one, a killed benchmark's server is stopped by the next.
"""

from __future__ import annotations

from functools import partial

import pytest

from lab_helpers import bench, server, structured
from lab_helpers.cli.main import build_parser
from lab_helpers.connect.batch import at_once
from lab_helpers.models import INT8_CHAT_MODEL
from lab_helpers.server.config import chat_server
from lab_helpers.structured import StructuredClient
from lab_helpers.structured.presets import (
    TICKET_SCHEMA,
    TICKET_SYSTEM_PROMPT,
    support_messages,
    ticket_prompt,
)
from lab_helpers.support import SupportDesk
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """The tuned variant's benchmark run, and what its server answered meanwhile."""
    seen: dict = {}
    desk = SupportDesk(tmp_path_factory.mktemp("acme") / "acme.sqlite")

    base = chat_server("cpu")

    def while_running(srv) -> None:
        seen["log"] = srv.logs(tail=400)
        # A second benchmark server now would share the cores: refused before anything starts.
        with pytest.raises(bench.BenchError) as refused:
            bench.run_variant(bench.cpu_variants(base)[0], load, runtime="local")
        seen["refused"], seen["healthy_after"] = refused.value, srv.health()
        seen["servers_after"] = {i.name for i in server.list_servers()}
        loop = ToolLoop(srv, ToolExecutor(acme_registry(desk), decide=approve_all),
                        max_tokens=150)
        seen["loop"] = loop
        gen = StructuredClient(srv, max_tokens=160, system_prompt=TICKET_SYSTEM_PROMPT)
        ticket = structured.json_schema(TICKET_SCHEMA, name="support_ticket")
        # The tool loop and five tickets at once, as vLLM batches them.
        seen["transcript"], *seen["tickets"] = at_once(
            [partial(loop.run, "Where is my order ORD-78432?", tool_choice="required")]
            + [partial(gen.run, ticket_prompt(m.text), ticket) for m in support_messages()[:5]],
            workers=6, desc="answers", unit="answer", progress=False)

    variant = bench.cpu_tuned(base)
    load = bench.concurrent([4], max_requests=8, prompt_tokens=64, output_tokens=32)
    run = bench.run_variant(variant, load, progress=False, on_start=while_running)
    return variant, run, seen


def test_the_server_ran_int8_weights_compiled(tuned):
    variant, run, seen = tuned
    assert variant.config.model_path.name == INT8_CHAT_MODEL
    assert not variant.config.enforce_eager
    log = seen["log"]
    assert "quantization=compressed-tensors" in log
    assert "enforce_eager=False" in log
    assert (run.frame["requests_errored"] == 0).all() and run.frame["requests_ok"].sum() >= 8


def test_a_required_tool_call_is_valid_and_runs(tuned):
    _, _, seen = tuned
    transcript, loop = seen["transcript"], seen["loop"]
    first = transcript.rounds[0]
    assert first.calls and first.finish_reason == "tool_calls"
    for call in transcript.calls:
        loop.registry.validate(call)  # raises on an unknown tool or invalid arguments
    assert all(r.ran for r in first.results)


def test_json_tickets_validate(tuned):
    _, _, seen = tuned
    bad = [(r.text, r.verdict.reason) for r in seen["tickets"] if not r.valid]
    assert not bad, bad


def test_a_second_benchmark_server_is_refused_with_the_command_that_frees_the_cores(tuned):
    variant, _, seen = tuned
    error = seen["refused"]
    assert variant.server_name in error.what
    assert error.fix == f"vllm-lab down {variant.server_name}"
    args = build_parser().parse_args(error.fix.split()[1:])  # the fix is a real command
    assert args.names == [variant.server_name]
    assert seen["healthy_after"]  # the running benchmark was not touched
    assert "bench-default" not in seen["servers_after"]  # and nothing else was started


def test_a_killed_benchmarks_server_is_stopped_by_the_next_one():
    """kill -9 of a benchmark leaves its server running (a session of its own); the next
    benchmark finds no owner and stops it instead of measuring next to it."""
    import os
    import signal
    import subprocess
    import sys

    from lab_helpers.bench.fresh import _owner_path, owner_is_gone

    script = (
        "import time\n"
        "from lab_helpers import bench\n"
        "from lab_helpers.server.config import chat_server\n"
        "v = bench.Variant('orphan', 'killed mid-run', chat_server('cpu'))\n"
        "load = bench.concurrent([1], max_requests=1)\n"
        "bench.run_variant(v, load, runtime='local', progress=False,\n"
        "                  on_start=lambda srv: (print('up', flush=True), time.sleep(600)))\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        assert not owner_is_gone("bench-orphan")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert server.get("bench-orphan").health()  # outlived its benchmark
    assert owner_is_gone("bench-orphan")
    # Without the owner file run_variant writes, it is not a benchmark's: left alone.
    owner = _owner_path("bench-orphan")
    aside = owner.rename(owner.with_name("aside"))
    assert bench.stop_orphans() == []
    assert server.get("bench-orphan").health()
    aside.rename(owner)
    assert bench.stop_orphans() == ["bench-orphan"]
    assert not owner.exists()
    assert "bench-orphan" not in {i.name for i in server.list_servers()}
