"""Reuse decisions and the errors a learner sees before any server starts."""

from __future__ import annotations

import json
import socket

import pytest

from lab_helpers.cli.main import build_parser
from lab_helpers.errors import (
    GPUUnavailable,
    ImageMissing,
    InsufficientMemory,
    ModelNotFound,
    PodmanUnavailable,
    PortInUse,
)
from lab_helpers.server import LocalRuntime, PodmanRuntime, choose_runtime, free_port, podman_cli
from lab_helpers.server.base import FATAL_LOG, ServerInfo, preflight, reuse_decision
from lab_helpers.server.config import COMPILE_IMAGE, ServerConfig, chat_server
from lab_helpers.server.gpu import gpu_status
from lab_helpers.server.keys import key_file, new_api_key, read_api_key, start_lock


@pytest.fixture
def config(tiny_model_dir) -> ServerConfig:
    return ServerConfig(model=str(tiny_model_dir), name="chat", port=8123)


def _info(config: ServerConfig, **changes) -> ServerInfo:
    base = dict(name=config.name, runtime="local", state="running", host=config.host,
                port=config.port, model_name=config.model_name,
                config_hash=config.config_hash(), ident="1")
    return ServerInfo(**{**base, **changes})


def test_nothing_running_means_start(config):
    assert reuse_decision(None, config, reuse=True, has_key=True, healthy=lambda: True) == "start"


def test_healthy_same_config_is_reused(config):
    assert reuse_decision(_info(config), config, reuse=True, has_key=True,
                          healthy=lambda: True) == "reuse"


@pytest.mark.parametrize("why", ["other-config", "exited", "unhealthy", "no-key", "no-reuse"])
def test_anything_else_is_replaced(config, why):
    info = _info(config, config_hash="0" * 16 if why == "other-config" else
                 config.config_hash(), state="exited" if why == "exited" else "running")
    decision = reuse_decision(info, config, reuse=why != "no-reuse", has_key=why != "no-key",
                              healthy=lambda: why != "unhealthy")
    assert decision == "replace"


def test_health_is_not_probed_when_config_differs(config):
    probed = []
    reuse_decision(_info(config, config_hash="x"), config, reuse=True, has_key=True,
                   healthy=lambda: probed.append(1) or True)
    assert probed == []


def test_missing_model_directory_says_how_to_prepare(tmp_path):
    with pytest.raises(ModelNotFound) as err:
        preflight(ServerConfig(model=str(tmp_path / "nope")))
    assert "prepare-models" in err.value.fix


def test_directory_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFound, match="config.json"):
        preflight(ServerConfig(model=str(tmp_path)))


def test_hub_id_offline_is_refused_with_alternatives():
    with pytest.raises(ModelNotFound) as err:
        preflight(ServerConfig(model="someorg/some-model"))
    assert "offline" in str(err.value) and "prepare-models" in err.value.fix


@pytest.mark.skipif(gpu_status()[0], reason="this machine has a GPU")
def test_gpu_profile_without_gpu_names_the_cpu_profile():
    with pytest.raises(GPUUnavailable) as err:
        preflight(chat_server("gpu"))
    assert "cpu" in err.value.fix


def test_kv_cache_larger_than_memory(config):
    with pytest.raises(InsufficientMemory) as err:
        preflight(config.replace(kv_cache_gib=100_000))
    assert "kv_cache_gib" in err.value.fix


def test_port_in_use_names_a_free_port(config, lab_home):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUse) as err:
            LocalRuntime()._require_port(config.replace(port=port))
    assert str(port) in str(err.value)
    assert "port=" in err.value.fix and "ss -ltnp" in err.value.fix


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_podman_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    podman_cli.podman_status.cache_clear()
    try:
        assert podman_cli.podman_status()[0] is False
        with pytest.raises(PodmanUnavailable) as err:
            podman_cli.require_podman()
        assert "apt-get install" in err.value.fix and "local" in err.value.fix
    finally:
        podman_cli.podman_status.cache_clear()


@pytest.mark.skipif(not podman_cli.podman_status()[0], reason="needs a working Podman")
def test_missing_image_says_how_to_build(config):
    with pytest.raises(ImageMissing) as err:
        PodmanRuntime().check(config.replace(image="localhost/vllm-lab-no-such-image:0"))
    assert "build-image" in err.value.fix


@pytest.mark.skipif(not podman_cli.podman_status()[0] or podman_cli.image_exists(COMPILE_IMAGE),
                    reason="needs a working Podman without the compiler image")
def test_missing_compiler_image_names_the_build_that_makes_it(config, monkeypatch):
    compiled = config.replace(image=COMPILE_IMAGE, enforce_eager=False)
    with pytest.raises(ImageMissing) as err:
        PodmanRuntime().check(compiled)
    command = err.value.fix.split("   ")[0]
    assert command == "vllm-lab build-image --compiler"
    assert build_parser().parse_args(command.split()[1:]).compiler
    # The automatic choice (no VLLM_LAB_RUNTIME override) falls back to a local process and
    # names the same build.
    monkeypatch.delenv("VLLM_LAB_RUNTIME", raising=False)
    kind, why = choose_runtime(compiled)
    assert kind == "local" and "build-image --compiler" in why


# -- engine death: only lines that really mean it ----------------------------------------------

# Lines seen in healthy starts (or shaped like them): they must not abort a start.
HARMLESS_LINES = [
    "ERROR 11-29 20:00:00 [registry.py:88] Failed to import optional plugin: harmless",
    "Traceback (most recent call last):",
    "ModuleNotFoundError: No module named 'optional_plugin'",
    "WARNING 11-29 20:00:01 [cpu.py:120] Pin memory is not supported on CPU.",
    "(APIServer pid=12) INFO 11-29 20:00:02 [api_server.py:1] error: 0 requests failed",
]
FATAL_LINES = [
    "RuntimeError: Engine core initialization failed. See root cause above. Failed core "
    "proc(s): {}",
    "(EngineCore_DP0 pid=71) ERROR 11-29 20:00:03 [core.py:1] EngineCore failed to start.",
    "vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue.",
    "torch._inductor.exc.InvalidCxxCompiler: No working C++ compiler found in "
    "torch._inductor.config.cpp.cxx: (None, 'g++')",
    "api_server.py: error: unrecognized arguments: --no-such-vllm-flag",
    "vllm.entrypoints.openai.api_server: error: unrecognized arguments: --no-such-flag",
    "keyguard: refusing to start vLLM without an API key: set LAB_API_KEY_FILE",
]


@pytest.mark.parametrize("line", HARMLESS_LINES)
def test_harmless_lines_are_not_fatal(line):
    assert not FATAL_LOG.search(line)


@pytest.mark.parametrize("line", FATAL_LINES)
def test_engine_death_lines_are_fatal(line):
    assert FATAL_LOG.search(line)


def test_a_failed_start_names_a_cause_found_far_above_the_logs_last_lines(config, monkeypatch):
    """The engine's root cause (here: no C++ compiler) comes before a long traceback and the
    shutdown lines: the error's cause is looked for in the whole start log, while its details
    show the last lines."""
    from lab_helpers.errors import ServerStartError
    from lab_helpers.server import base

    log = "\n".join([
        "(EngineCore pid=1) ERROR torch._inductor.exc.InvalidCxxCompiler: No working C++ "
        "compiler found in torch._inductor.config.cpp.cxx: (None, 'g++')",
        *[f"  File \"frame_{i}.py\", line {i}, in step" for i in range(200)],
        "RuntimeError: Engine core initialization failed. See root cause above.",
    ])
    runtime = LocalRuntime()
    monkeypatch.setattr(runtime, "logs", lambda name, tail=100: "\n".join(
        log.splitlines()[-tail:]))
    with pytest.raises(ServerStartError) as err:
        runtime._fail(config, "The server exited before it became healthy.")
    assert "build-image --compiler" in err.value.cause
    assert "InvalidCxxCompiler" not in err.value.details  # only the last lines are shown
    assert len(err.value.details.splitlines()) == base.LOG_TAIL_ON_ERROR + 1


# -- keys --------------------------------------------------------------------------------------


def test_key_files_and_servers_folder_are_owner_only(lab_home):
    key = new_api_key("chat")
    path = key_file("chat")
    assert read_api_key("chat") == key
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert new_api_key("chat") != key, "a fresh key per start"


def test_removing_a_server_removes_its_key(lab_home):
    from lab_helpers.paths import servers_dir

    new_api_key("gone")
    (servers_dir() / "gone.local.json").write_text(json.dumps({
        "name": "gone", "pid": 2**22 + 3, "host": "127.0.0.1", "port": 1,
        "model_name": "x", "config_hash": "x", "log": "/dev/null"}))
    assert LocalRuntime().remove("gone")
    assert not key_file("gone").exists()
    assert LocalRuntime().find("gone") is None


def test_a_second_start_of_the_same_name_waits_for_the_first(lab_home):
    """The start lock is held across processes: another process cannot take it meanwhile."""
    import subprocess
    import sys

    probe = ("import fcntl, sys; from lab_helpers.paths import servers_dir; "
             "h = open(servers_dir() / 'chat.lock', 'a');\n"
             "try:\n    fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
             "except BlockingIOError:\n    print('held')")
    with start_lock("chat"):
        held = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True).stdout.strip()
    free = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert (held, free) == ("held", "free")
