"""The lab's one settings switch: profile, runtime and chat model (lab_settings.py, `vllm-lab
settings`), read by every module through `lab_profile()`, `chat_server()` and `server.start`."""

from __future__ import annotations

import json
import shlex

import pytest

from lab_helpers.cli import main
from lab_helpers.cli.main import build_parser
from lab_helpers.errors import LabError
from lab_helpers.server import choose_runtime
from lab_helpers.server.config import chat_server
from lab_helpers.server.lab_settings import (
    VARIABLES,
    lab_profile,
    lab_settings,
    save_settings,
    settings_path,
)
from lab_helpers.server.room_settings import JoinedRoom, save_join

BIG = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture
def settings_home(lab_home, monkeypatch):
    """An empty lab home with none of the settings' variables set."""
    for variable in VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    return lab_home


def _parses(command: str) -> None:
    """A fix's `vllm-lab ...` command is one the CLI accepts."""
    argv = shlex.split(command)
    assert argv[0].endswith("vllm-lab"), command
    build_parser().parse_args(argv[1:])


def test_the_defaults_until_something_is_set(settings_home):
    settings = lab_settings()
    assert (settings.profile, settings.runtime, settings.model) == ("cpu", "auto", None)
    assert set(settings.sources.values()) == {"default"}
    assert not settings_path().exists()  # reading writes nothing


def test_saved_settings_reach_every_module(capsys, settings_home):
    assert main(["settings", "--profile", "gpu", "--runtime", "local", "--model", BIG]) == 0
    out = capsys.readouterr().out
    assert f"model:   {BIG}" in out and "runtime: local" in out
    settings = lab_settings()
    assert (settings.profile, settings.runtime, settings.model) == ("gpu", "local", BIG)
    assert set(settings.sources.values()) == {str(settings_path())}
    assert lab_profile() == "gpu"
    # The chat server of the lab's profile serves the saved model; another profile its own.
    assert chat_server("gpu").model == BIG
    assert chat_server("cpu").model_name == "smollm2-135m-instruct"
    # The runtime every start uses.
    kind, why = choose_runtime(chat_server("cpu"))
    assert kind == "local" and "settings" in why


def test_the_environment_wins_over_the_file(settings_home, monkeypatch):
    save_settings(profile="gpu", runtime="local", model=BIG)
    monkeypatch.setenv("VLLM_LAB_RUNTIME", "podman")
    monkeypatch.setenv("VLLM_LAB_MODEL", "qwen2.5-3b-instruct")  # a served name is accepted
    settings = lab_settings()
    assert (settings.runtime, settings.model) == ("podman", "Qwen/Qwen2.5-3B-Instruct")
    assert settings.sources["runtime"] == "VLLM_LAB_RUNTIME"
    assert choose_runtime(chat_server("cpu")) == ("podman", "VLLM_LAB_RUNTIME=podman")


def test_the_profile_variable_wins_over_the_saved_profile(settings_home, monkeypatch):
    save_settings(profile="gpu")
    monkeypatch.setenv("VLLM_LAB_PROFILE", "cpu")
    settings = lab_settings()
    assert (settings.profile, settings.sources["profile"]) == ("cpu", "VLLM_LAB_PROFILE")
    assert chat_server(lab_profile()).model_name == "smollm2-135m-instruct"


def test_default_goes_back_to_the_profiles_own_model(settings_home):
    save_settings(profile="gpu", model=BIG)
    save_settings(model="default")
    assert lab_settings().model is None
    assert chat_server("gpu").model == "Qwen/Qwen2.5-3B-Instruct"
    assert "model" not in json.loads(settings_path().read_text())


def test_a_gpu_model_with_the_cpu_profile_is_refused_and_nothing_is_lost(settings_home):
    save_settings(profile="gpu", model=BIG)
    before = settings_path().read_text()
    with pytest.raises(LabError, match="needs the gpu profile") as info:
        save_settings(profile="cpu")
    assert settings_path().read_text() == before
    own, gpu = info.value.fix.removesuffix(" (on a host with an NVIDIA GPU)").split(", or ")
    assert own.endswith("--profile cpu --model default")  # what was asked for, made to work
    for fix in (own, gpu):
        _parses(fix)
    with pytest.raises(LabError, match="needs the gpu profile"):
        save_settings(model=BIG, profile="cpu")
    assert settings_path().read_text() == before


def test_unknown_values_are_refused_with_a_fix_that_parses(settings_home, monkeypatch):
    with pytest.raises(LabError, match="Unknown model 'my-model'") as info:
        save_settings(model="my-model")
    assert BIG in info.value.cause  # the catalog is listed
    _parses(info.value.fix)
    assert not settings_path().exists()
    settings_home.mkdir(parents=True, exist_ok=True)
    for key, value in (("profile", "big"), ("runtime", "docker"), ("model", "my-model")):
        settings_path().write_text(json.dumps({key: value}))
        with pytest.raises(LabError, match=f"Unknown {key}") as info:
            lab_settings()
        _parses(info.value.fix)
    settings_path().write_text("{}")
    monkeypatch.setenv("VLLM_LAB_PROFILE", "tpu")
    with pytest.raises(LabError, match="Unknown profile 'tpu'") as info:
        lab_profile()
    assert info.value.fix == "unset VLLM_LAB_PROFILE or set it to cpu"
    # Whatever a variable or the file holds, the error repeats a short, one-line part of it.
    monkeypatch.setenv("VLLM_LAB_PROFILE", "x\u2028" * 5000)
    with pytest.raises(LabError) as info:
        lab_profile()
    assert len(info.value.what) < 200 and "\u2028" not in info.value.what
    monkeypatch.delenv("VLLM_LAB_PROFILE")
    settings_path().write_text("[" * 100_000 + "]" * 100_000)  # nested past the parser's depth
    with pytest.raises(LabError, match="cannot be read"):
        lab_profile()
    monkeypatch.setenv("VLLM_LAB_PROFILE", "tpu")
    settings_path().write_text("not json")
    monkeypatch.delenv("VLLM_LAB_PROFILE")
    with pytest.raises(LabError, match="cannot be read") as info:
        lab_profile()
    _parses(info.value.fix.split("; ")[1])


def test_the_profile_command_is_the_settings_profile(capsys, settings_home):
    assert main(["profile", "gpu"]) == 0
    assert "profile: gpu (from" in capsys.readouterr().out
    assert lab_profile() == "gpu"
    assert main(["settings", "--runtime", "local"]) == 0  # the others keep their value
    assert (lab_profile(), lab_settings().runtime) == ("gpu", "local")


def test_a_joined_room_keeps_its_place_beside_the_settings(capsys, settings_home):
    save_join(JoinedRoom(url="http://127.0.0.1:9", attendee="alice"), "k" * 40)
    assert main(["settings", "--runtime", "local"]) == 0
    assert "alice" in capsys.readouterr().out
    assert json.loads(settings_path().read_text())["room"]["attendee"] == "alice"
