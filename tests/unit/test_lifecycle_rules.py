"""Reuse decisions and the errors a learner sees before any server starts."""

from __future__ import annotations

import socket

import pytest

from lab_helpers import podman_cli
from lab_helpers.config import ServerConfig, chat_server
from lab_helpers.errors import (
    GPUUnavailable,
    ImageMissing,
    InsufficientMemory,
    ModelNotFound,
    PodmanUnavailable,
    PortInUse,
)
from lab_helpers.server import LocalRuntime, PodmanRuntime, free_port
from lab_helpers.server.base import ServerInfo, preflight, reuse_decision
from lab_helpers.server.gpu import gpu_status


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
