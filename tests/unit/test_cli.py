"""`vllm-lab` commands that need no running server."""

from __future__ import annotations

import pytest

from lab_helpers.cli import main
from lab_helpers.cli.start import make_workspace, reset_notebook, warm_start
from lab_helpers.errors import LabError
from lab_helpers.paths import shipped_notebooks_dir
from lab_helpers.server.config import GPU_IMAGE
from lab_helpers.server.gpu import gpu_status
from lab_helpers.server.lab_settings import lab_profile


def test_up_dry_run_prints_the_gpu_command(capsys):
    assert main(["up", "--profile", "gpu", "--runtime", "podman", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "podman run" in out and GPU_IMAGE in out and "nvidia.com/gpu=all" in out


@pytest.mark.skipif(gpu_status()[0], reason="this machine has a GPU")
def test_up_gpu_without_gpu_fails_with_the_fix(capsys, lab_home):
    # (its own lab home: the test lab's chat server may be starting, holding the name's lock)
    assert main(["up", "--profile", "gpu", "--runtime", "local"]) == 2
    err = capsys.readouterr().err
    assert "GPU" in err and "--profile cpu" in err



@pytest.mark.skipif(gpu_status()[0], reason="this machine has a GPU")
def test_room_up_follows_the_labs_profile_like_every_other_command(capsys, lab_home,
                                                                    monkeypatch):
    """One settings switch: `vllm-lab profile gpu` (or VLLM_LAB_PROFILE) is the room's profile
    too, as it is `room export`'s; without a GPU the room refuses before writing any key."""
    monkeypatch.delenv("VLLM_LAB_PROFILE", raising=False)
    assert main(["profile", "gpu"]) == 0
    assert main(["room", "up", "--attendees", "2", "--runtime", "local"]) == 2
    err = capsys.readouterr().err
    assert "gpu profile needs" in err and "--profile cpu" in err
    assert not list((lab_home / "servers").glob("*.room/keys.json"))

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


# -- the learner's working copies -------------------------------------------------------------


def test_workspace_copies_once_and_reset_keeps_a_backup(tmp_path):
    source, dest = shipped_notebooks_dir(), tmp_path / "work"
    made = make_workspace(source, dest)
    assert sorted(p.name for p in made) == sorted(
        p.name for p in [*source.glob("*.ipynb"), source / "GLOSSARY.md"])
    module2 = made[1]
    module2.write_text("{}")
    assert make_workspace(source, dest) == [] and module2.read_text() == "{}"
    fresh, backup = reset_notebook(source, dest, "02")
    assert fresh == module2 and fresh.read_bytes() == (source / fresh.name).read_bytes()
    assert backup is not None and backup.read_text() == "{}"
    assert reset_notebook(source, dest, "03")[1] is not None  # the unchanged copy, kept too
    # Reset twice in the same second: each earlier version keeps its own backup.
    module2.write_text('{"mine": 2}')
    second = reset_notebook(source, dest, "02")[1]
    third = reset_notebook(source, dest, "02")[1]
    assert len({backup, second, third}) == 3 and backup.read_text() == "{}"
    assert second.read_text() == '{"mine": 2}'


def test_workspace_reset_of_an_unknown_module_names_the_modules(tmp_path):
    with pytest.raises(LabError) as info:
        reset_notebook(shipped_notebooks_dir(), tmp_path, "9")
    assert "01, 02, 03, 04, 05" in str(info.value) and "--reset 01" in str(info.value)
    assert not list(tmp_path.iterdir())


# -- the lab's one settings switch (tests/unit/test_lab_settings.py: the settings themselves) --


def test_warm_start_with_the_gpu_profile_and_no_gpu_starts_nothing(lab_home, monkeypatch):
    if gpu_status()[0]:
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("VLLM_LAB_PROFILE", "gpu")
    assert warm_start(lab_profile()).action == "off"
    assert not (lab_home / "logs" / "warm-start.log").exists()


def test_room_benchmarks_without_a_running_room_changes_nothing(capsys, lab_home, monkeypatch):
    monkeypatch.setenv("VLLM_LAB_RUNTIME", "local")
    assert main(["room", "benchmarks", "on"]) == 2
    assert "No running lab server named 'chat'" in capsys.readouterr().err
    assert not list((lab_home / "servers").glob("*.room/options.json"))
