"""`vllm-lab` commands that need no running server."""

from __future__ import annotations

import pytest

from lab_helpers.cli import main
from lab_helpers.server.config import GPU_IMAGE
from lab_helpers.server.gpu import gpu_status


def test_up_dry_run_prints_the_gpu_command(capsys):
    assert main(["up", "--profile", "gpu", "--runtime", "podman", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "podman run" in out and GPU_IMAGE in out and "nvidia.com/gpu=all" in out


@pytest.mark.skipif(gpu_status()[0], reason="this machine has a GPU")
def test_up_gpu_without_gpu_fails_with_the_fix(capsys):
    assert main(["up", "--profile", "gpu", "--runtime", "local"]) == 2
    err = capsys.readouterr().err
    assert "GPU" in err and "--profile cpu" in err


def test_unknown_server_logs_is_a_clear_error(capsys, lab_home):
    assert main(["logs", "no-such-server"]) == 2
    assert "vllm-lab up" in capsys.readouterr().err


def test_status_with_no_servers(capsys, lab_home, monkeypatch):
    monkeypatch.setenv("VLLM_LAB_RUNTIME", "local")
    from lab_helpers import server

    monkeypatch.setattr(server, "available_runtimes", lambda: [server.LocalRuntime()])
    assert main(["status"]) == 0
    assert "no lab servers" in capsys.readouterr().out


def test_up_compile_uses_the_compiler_image(capsys):
    from lab_helpers.server.image import COMPILE_IMAGE

    assert main(["up", "--compile", "--runtime", "podman", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert COMPILE_IMAGE in out and "--enforce-eager" not in out


def test_up_expose_is_explicit_and_warns(capsys):
    with pytest.warns(UserWarning, match="reachable from other machines"):
        assert main(["up", "--expose", "--runtime", "podman", "--dry-run"]) == 0
    assert "--publish 0.0.0.0:" in capsys.readouterr().out
