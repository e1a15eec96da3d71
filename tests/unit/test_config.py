"""ServerConfig -> vLLM argv and container/process command lines, for both profiles."""

from __future__ import annotations

import os
import re
import shlex
import sys

import pytest

from lab_helpers.errors import ConfigError
from lab_helpers.server import LocalRuntime, PodmanRuntime
from lab_helpers.server.config import (
    CONTAINER_PORT,
    CPU_IMAGE,
    GPU_IMAGE,
    ServerConfig,
    chat_server,
    embedding_server,
)
from lab_helpers.server.keys import key_file
from lab_helpers.server.local import LAUNCHER


def _value_after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == flag]


@pytest.fixture
def cpu_config(tiny_model_dir) -> ServerConfig:
    return ServerConfig(model=str(tiny_model_dir), name="chat", served_model_name="tiny",
                        port=8123, max_model_len=2048, enable_tools=True,
                        tool_call_parser="hermes")


def test_vllm_args_carry_every_setting(cpu_config):
    args = cpu_config.vllm_args()
    assert _value_after(args, "--model") == [cpu_config.model]
    assert _value_after(args, "--served-model-name") == ["tiny"]
    assert _value_after(args, "--port") == ["8123"]
    assert _value_after(args, "--host") == ["127.0.0.1"]
    assert _value_after(args, "--max-model-len") == ["2048"]
    assert _value_after(args, "--tool-call-parser") == ["hermes"]
    assert "--enable-auto-tool-choice" in args
    assert "--enforce-eager" in args


def test_max_model_len_none_lets_vllm_read_the_model(cpu_config):
    assert "--max-model-len" not in cpu_config.replace(max_model_len=None).vllm_args()


def test_compile_mode_drops_enforce_eager(cpu_config):
    assert "--enforce-eager" not in cpu_config.replace(enforce_eager=False).vllm_args()


def test_extra_args_are_appended_verbatim(cpu_config):
    args = cpu_config.replace(extra_args=("--max-num-seqs", "4")).vllm_args()
    assert args[-2:] == ["--max-num-seqs", "4"]


def test_podman_cpu_command(cpu_config):
    argv = PodmanRuntime().command(cpu_config)
    assert argv[1:3] == ["run", "--detach"]
    assert _value_after(argv, "--name") == [cpu_config.container_name]
    assert _value_after(argv, "--publish") == [f"127.0.0.1:8123:{CONTAINER_PORT}"]
    labels = dict(label.split("=", 1) for label in _value_after(argv, "--label"))
    assert labels["io.vllm-lab.config-hash"] == cpu_config.config_hash()
    assert labels["io.vllm-lab.name"] == "chat"
    assert labels["io.vllm-lab.port"] == "8123"
    # The model directory is mounted read-only and vLLM is pointed at the mount.
    mounts = _value_after(argv, "--volume")
    assert f"{cpu_config.model}:/models/tiny-model:ro" in mounts
    image_at = argv.index(CPU_IMAGE)
    # The lab's launcher runs vLLM: it reads the key from the mounted key file.
    assert _value_after(argv, "--entrypoint") == ["/opt/venv/bin/python"]
    assert argv[image_at + 1] == "/opt/vllm-lab/keyguard.py"
    assert f"{key_file('chat')}:/run/secrets/vllm-lab-api-key:ro" in mounts
    # ... with the room's policy beside it (keyguard.py imports room_guard.py)
    for launcher_file in ("keyguard.py", "room_guard.py"):
        assert f"{LAUNCHER.with_name(launcher_file)}:/opt/vllm-lab/{launcher_file}:ro" in mounts
    vllm_part = argv[image_at + 2:]
    assert _value_after(vllm_part, "--model") == ["/models/tiny-model"]
    assert _value_after(vllm_part, "--host") == ["0.0.0.0"]
    assert _value_after(vllm_part, "--port") == [str(CONTAINER_PORT)]
    envs = _value_after(argv[:image_at], "--env")
    assert not any(e.startswith("VLLM_API_KEY") for e in envs), "no key in podman's records"
    assert "LAB_API_KEY_FILE=/run/secrets/vllm-lab-api-key" in envs
    assert not any(e.startswith("VLLM_LAB_") for e in envs), "vLLM warns about unknown VLLM_*"
    assert "VLLM_CPU_KVCACHE_SPACE=1" in envs
    assert "--shm-size" in argv and "--device" not in argv


def test_podman_gpu_profile_command():
    config = chat_server("gpu")
    argv = PodmanRuntime().command(config)
    image_at = argv.index(GPU_IMAGE)
    podman_part, vllm_part = argv[:image_at], argv[image_at + 1:]
    assert _value_after(podman_part, "--device") == ["nvidia.com/gpu=all"]
    assert "--ipc=host" in podman_part
    assert "HF_TOKEN" in _value_after(podman_part, "--env")
    assert any(m.endswith(":/root/.cache/huggingface") for m in _value_after(podman_part,
                                                                           "--volume"))
    assert "--shm-size" not in podman_part
    assert _value_after(vllm_part, "--model") == [config.model]
    assert "/" in config.model, "a hub id such as Qwen/Qwen2.5-3B-Instruct"
    assert _value_after(vllm_part, "--tool-call-parser") == ["hermes"]
    assert "--enforce-eager" not in vllm_part
    assert not any(e.startswith("VLLM_CPU_KVCACHE_SPACE") for e in _value_after(podman_part,
                                                                               "--env"))


def test_gpu_embedding_profile_is_a_pooling_server():
    config = embedding_server("gpu")
    assert _value_after(config.vllm_args(), "--runner") == ["pooling"]
    assert config.port != chat_server("gpu").port


def test_local_command_runs_the_launcher_not_the_broken_script(cpu_config):
    argv = LocalRuntime().command(cpu_config)
    assert argv[:2] == [sys.executable, str(LAUNCHER)]
    assert _value_after(argv, "--model") == [cpu_config.model]


def test_local_gpu_command_has_no_container_flags():
    argv = LocalRuntime().command(chat_server("gpu"))
    assert "--device" not in argv and "--ipc=host" not in argv


@pytest.mark.parametrize("runtime", [PodmanRuntime(), LocalRuntime()])
def test_preview_is_the_command_and_hides_the_key(runtime, cpu_config, monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "secret-should-not-appear")
    text = runtime.preview(cpu_config)
    assert "secret-should-not-appear" not in text
    words = shlex.split(text)
    while re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # leading VAR=value assignments
        words.pop(0)
    command = runtime.command(cpu_config)
    assert words[1:] == command[1:]
    assert os.path.basename(words[0]) == os.path.basename(command[0])


def test_config_hash_tracks_what_shapes_the_server(cpu_config):
    same = ServerConfig(**{**cpu_config.__dict__})
    assert same.config_hash() == cpu_config.config_hash()
    for change in ({"port": 8124}, {"extra_args": ("--max-num-seqs", "2")},
                   {"kv_cache_gib": 2}, {"enforce_eager": False}, {"env": {"A": "1"}}):
        assert cpu_config.replace(**change).config_hash() != cpu_config.config_hash(), change


def test_config_hash_ignores_env_order(cpu_config):
    a = cpu_config.replace(env={"A": "1", "B": "2"})
    b = cpu_config.replace(env={"B": "2", "A": "1"})
    assert a.config_hash() == b.config_hash()


@pytest.mark.parametrize("bad", [{"name": "Bad Name"}, {"port": 70000},
                                 {"enable_tools": True, "tool_call_parser": None},
                                 {"host": "0.0.0.0"}, {"host": "127.0.0.l"},
                                 {"host": "192.168.1.10"}])
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        ServerConfig(model="/x", **bad)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_expose(host):
    assert ServerConfig(model="/x", host=host).host == host


def test_exposing_a_server_is_explicit_and_warns(cpu_config):
    with pytest.raises(ConfigError, match="expose=True"):
        cpu_config.replace(host="0.0.0.0")
    with pytest.warns(UserWarning, match="reachable from other machines"):
        exposed = cpu_config.replace(host="0.0.0.0", expose=True)
    assert f"0.0.0.0:{exposed.port}:{CONTAINER_PORT}" in PodmanRuntime().command(exposed)


def test_a_new_launcher_revision_changes_the_hash(cpu_config, monkeypatch):
    """A server started by an older launcher (say, without room keys) is replaced, not reused."""
    from lab_helpers.server import config as config_module

    before = cpu_config.config_hash()
    monkeypatch.setattr(config_module, "LAUNCHER_REVISION", config_module.LAUNCHER_REVISION + 1)
    assert cpu_config.config_hash() != before
