"""Real vLLM servers in both runtimes: start, chat, embeddings, reuse, failures.

The chat servers are the session's shared ones (conftest: `chat_srv` in Podman under the lab's
default name, `local_chat_srv`), so later tests and the notebooks reuse them. Replacing a
running server is shown where a server is replaced anyway: a different config, on module 1's
embeddings server, and the same config with `reuse=False`, on the shared local chat server
(test_connection.py); a stopped server started again (test_chat.py).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from lab_helpers import server
from lab_helpers.errors import PortInUse, ServerStartError
from lab_helpers.paths import container_name, lab_instance, port_base
from lab_helpers.server.config import chat_server, embedding_server
from lab_helpers.server.podman_cli import image_exists, podman_status, run_podman

pytestmark = pytest.mark.integration

ERROR_LINE = re.compile(r"Traceback|\bERROR\b|Error:")

RUNTIMES = [
    "local",
    pytest.param("podman", marks=[
        pytest.mark.podman,
        pytest.mark.skipif(not podman_status()[0], reason="Podman is not usable here"),
    ]),
]
# Names and ports per runtime; Podman gets the defaults the notebooks use.
SETTINGS = {
    "podman": {"chat": {}, "embed": {}},
    "local": {"chat": {"name": "chat-local", "port": port_base() + 10},
              "embed": {"name": "embed-local", "port": port_base() + 11}},
}


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request) -> server.Runtime:
    if request.param == "podman" and not image_exists(chat_server().image):
        pytest.fail("the lab image is not built: run `vllm-lab build-image` (./lab test does)")
    return server.get_runtime(request.param)


@pytest.fixture(scope="module")
def chat(runtime, request):
    """The shared chat server of the runtime (the conftest's, started once per session)."""
    return request.getfixturevalue("chat_srv" if runtime.kind == "podman" else "local_chat_srv")


def test_chat_completion(chat):
    assert chat.health()
    reply = chat.client().chat.completions.create(
        model=chat.model_name, max_tokens=16, temperature=0,
        messages=[{"role": "user", "content": "Say hello to an ACME customer."}],
    )
    assert reply.choices[0].message.content.strip()
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0


def test_models_endpoint_lists_the_served_name(chat):
    names = [m.id for m in chat.client().models.list().data]
    assert names == [chat.model_name]


def test_api_key_is_required(chat):
    response = httpx.get(f"{chat.base_url}/v1/models", timeout=10)
    assert response.status_code == 401
    assert chat.api_key.startswith("lab-")


def _check_embeddings(embed: server.Server) -> None:
    result = embed.client().embeddings.create(
        model=embed.model_name, input=["Where is my order?", "Track my package"])
    vectors = [d.embedding for d in result.data]
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 100


def test_embeddings_server(runtime, chat, capfd):
    """A second model next to the chat one; on the local runtime, as a context manager."""
    config = embedding_server("cpu", **SETTINGS[runtime.kind]["embed"])
    if runtime.kind == "local":
        with runtime.start(config) as embed:
            # no on_log: the start still showed its one progress line, left at its last step
            assert "healthy after" in capfd.readouterr().err
            _check_embeddings(embed)
            assert chat.health()
        assert runtime.find(config.name) is None, "leaving the with block stops the server"
    else:
        _check_embeddings(runtime.start(config))


def test_same_config_is_reused(runtime, chat, capfd):
    # The running server as it is now (test_connection replaces the shared local one).
    running = runtime.find(chat.name)
    assert running is not None and running.state == "running"
    capfd.readouterr()
    again = runtime.start(chat.config)
    assert again.reused
    assert "starting" not in capfd.readouterr().err, "a reused server shows no start progress"
    assert again.info.ident == running.ident


def test_get_finds_the_server_by_name(chat):
    found = server.get(chat.name)
    assert found.base_url == chat.base_url and found.api_key == chat.api_key


def test_listed_with_its_runtime(chat):
    listed = {(i.name, i.runtime, i.state) for i in server.list_servers()}
    assert (chat.name, chat.runtime.kind, "running") in listed


def test_logs_and_follow(chat):
    log = chat.logs(tail=50)
    assert len(log.splitlines()) > 3
    lines = []
    for line in chat.follow_logs(tail=5):
        lines.append(line)
        if len(lines) == 5:
            break
    assert len(lines) == 5


def test_port_in_use_fails_before_launching(runtime, chat):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = chat.config.replace(name="portclash", port=port)
        with pytest.raises(PortInUse):
            runtime.start(config)
    assert runtime.find("portclash") is None


@dataclass
class FailedStart:
    error: ServerStartError | None
    failed_at: float
    first_error_line: float | None  # when the log first showed an error-looking line


def _fail_to_start(runtime: server.Runtime, config, timeout: float) -> FailedStart:
    first_error: list[float] = []

    def watch(line: str) -> None:
        # Any error-looking line: the engine may die in the API process (config validation)
        # or in the engine core; either way the start must end within seconds of it.
        if not first_error and ERROR_LINE.search(line):
            first_error.append(time.monotonic())

    try:
        runtime.start(config, timeout=timeout, on_log=watch)
    except ServerStartError as err:
        return FailedStart(err, time.monotonic(), first_error[0] if first_error else None)
    runtime.remove(config.name)
    return FailedStart(None, time.monotonic(), None)


@pytest.fixture(scope="module")
def failed_starts(runtime, chat, tmp_path_factory) -> dict[str, FailedStart]:
    """Two starts that must fail, run at once (each is mostly a Python start waiting on one
    core): an invalid extra argument, and corrupt weights, where the API process lives on and
    the engine dies while loading them."""
    broken = tmp_path_factory.mktemp("broken") / "broken-model"
    shutil.copytree(chat.config.model_path, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[: 4096])
    configs = {
        "badargs": (chat.config.replace(name="badargs", port=server.free_port(),
                                        extra_args=("--no-such-vllm-flag",)), 180),
        "deadengine": (chat.config.replace(name="deadengine", port=server.free_port(),
                                           model=str(broken)), 300),
    }
    with ThreadPoolExecutor(len(configs)) as pool:
        started = {name: pool.submit(_fail_to_start, runtime, config, timeout)
                   for name, (config, timeout) in configs.items()}
        return {name: future.result() for name, future in started.items()}


def test_invalid_extra_argument_fails_with_the_log(runtime, failed_starts):
    err = failed_starts["badargs"].error
    assert err is not None, "a start with an invalid argument succeeded"
    assert "--no-such-vllm-flag" in err.details
    assert "extra_args" in err.cause
    assert runtime.find("badargs") is None, "a failed start must leave nothing behind"


def test_engine_death_is_reported_fast(runtime, failed_starts):
    """The start must fail within 10 s of the first error line in the log (not at the
    timeout), with the log's last lines, and leave nothing behind."""
    dead = failed_starts["deadengine"]
    assert dead.error is not None, "a start with corrupt weights succeeded"
    assert "last log lines" in dead.error.details
    assert dead.first_error_line is not None, \
        "the log showed no error line: " + dead.error.details[-1500:]
    late = dead.failed_at - dead.first_error_line
    assert late <= 10, f"noticed {late:.1f} s late"
    assert runtime.find("deadengine") is None


def test_stale_servers_are_cleaned_up(runtime, chat):
    name = "stale-test"
    if runtime.kind == "podman":
        # What a killed session leaves: a lab-labelled container that is no longer running.
        run_podman("run", "--name", container_name(name), "--label", "io.vllm-lab.managed=true",
                   "--label", f"io.vllm-lab.instance={lab_instance()}",
                   "--label", f"io.vllm-lab.name={name}", "--label", "io.vllm-lab.port=1",
                   "--entrypoint", "true", chat.config.image, timeout=120)
    else:
        from lab_helpers.paths import servers_dir

        (servers_dir() / f"{name}.local.json").write_text(json.dumps({
            "name": name, "pid": 2**22 + 1, "host": "127.0.0.1", "port": 1,
            "model_name": "x", "config_hash": "x", "log": "/dev/null"}))
    assert runtime.find(name) is not None
    removed = runtime.cleanup_stale()
    assert name in removed and chat.name not in removed
    assert runtime.find(name) is None
    assert chat.health()
