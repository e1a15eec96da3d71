"""The lab's one settings switch: the profile, the runtime and the chat model every module uses.

Set once, read by every notebook (`PROFILE = lab_profile()`; `chat_server(PROFILE)` serves the
model, `server.start` picks the runtime) and by `./lab start`'s background start of the chat
server. Each setting comes from, in this order:

1. the environment, when set: `VLLM_LAB_PROFILE`, `VLLM_LAB_RUNTIME`, `VLLM_LAB_MODEL`
   (e.g. `VLLM_LAB_PROFILE=gpu ./lab start`);
2. else what `vllm-lab settings` saved in the lab home (`settings.json`):

       ./.venv/bin/vllm-lab settings --profile gpu --runtime podman --model Qwen/Qwen2.5-7B-Instruct

3. else the defaults: profile `cpu` (runs anywhere), runtime `auto` (Podman where it works and
   the image is built, else a local process), model: the profile's own (the bundled
   SmolLM2-135M-Instruct on cpu, Qwen2.5-3B-Instruct on gpu).

The model belongs to the profile it was chosen with: a chat server asked for with another
profile (`chat_server("cpu")` in a gpu lab) serves that profile's own model. Every value is
checked when it is saved and when it is read: a GPU model with the cpu profile, a model outside
the lab's catalog or an unknown runtime stops with the command that mends it.

The same file records the room this lab has joined, if any (`vllm-lab join`, room_settings.py):
then the chat server every module starts is the room's (its key is in its own 0600 file).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..paths import lab_home, replace_file
from .catalog import CATALOG, find

PROFILES = ("cpu", "gpu")
RUNTIMES = ("auto", "podman", "local")
SETTINGS_FILE = "settings.json"
SETTINGS_COMMAND = "./.venv/bin/vllm-lab settings"
DEFAULT_MODEL = "default"  # `--model default`: the profile's own model
SHOWN = 40  # characters of a refused value an error repeats (it may be anything)
VARIABLES = {"profile": "VLLM_LAB_PROFILE", "runtime": "VLLM_LAB_RUNTIME",
             "model": "VLLM_LAB_MODEL"}
DEFAULTS = {"profile": "cpu", "runtime": "auto", "model": None}


@dataclass(frozen=True)
class LabSettings:
    """The three settings and where each came from (the variable, the file, or "default")."""

    profile: str
    runtime: str
    model: str | None
    """A catalog model's id, or None: the profile's own model."""
    sources: dict[str, str]

    def __str__(self) -> str:
        model = self.model or f"the {self.profile} profile's own"
        return "\n".join([
            f"profile: {self.profile} (from {self.sources['profile']})",
            f"runtime: {self.runtime} (from {self.sources['runtime']})"
            + (": Podman where it works, else a local process" if self.runtime == "auto" else ""),
            f"model:   {model} (from {self.sources['model']})",
        ])


def settings_path() -> Path:
    return lab_home() / SETTINGS_FILE


def lab_settings() -> LabSettings:
    """The lab's settings, checked (see the module's docstring for the order)."""
    saved = read_settings()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, variable in VARIABLES.items():
        value = os.environ.get(variable, "").strip()
        if value:
            values[key], sources[key] = value, variable
        elif saved.get(key) is not None:
            values[key], sources[key] = str(saved[key]), str(settings_path())
        else:
            values[key], sources[key] = DEFAULTS[key], "default"
    profile = _checked_profile(values["profile"], sources["profile"])
    runtime = _checked_runtime(values["runtime"].lower(), sources["runtime"])
    model = _checked_model(values["model"], profile, sources["model"])
    return LabSettings(profile, runtime, model, sources)


def lab_profile() -> str:
    """The profile the lab is set to: "cpu" or "gpu"."""
    return lab_settings().profile


def lab_runtime() -> tuple[str, str]:
    """(runtime, where it was set): "auto", "podman" or "local"."""
    settings = lab_settings()
    return settings.runtime, settings.sources["runtime"]


def lab_model(profile: str) -> str | None:
    """The chat model set for `profile`, or None: that profile's own model (a model set with
    the other profile is not this one's)."""
    settings = lab_settings()
    return settings.model if profile == settings.profile else None


def save_settings(*, profile: str | None = None, runtime: str | None = None,
                  model: str | None = None) -> Path:
    """Save the given settings for every module (in the lab home's settings file); the others
    keep their value. `model="default"` goes back to the profile's own model. Everything is
    checked before the file is touched."""
    settings = read_settings()
    if profile is not None:
        settings["profile"] = _checked_profile(profile, "asked for")
    if runtime is not None:
        settings["runtime"] = _checked_runtime(runtime.lower(), "asked for")
    if model is not None:
        settings.pop("model", None)
        if model != DEFAULT_MODEL:
            settings["model"] = _checked_model(model, settings.get("profile", "cpu"),
                                               "asked for")
    elif profile is not None and settings.get("model"):
        # A new profile with the model saved for the old one: checked together.
        _checked_model(settings["model"], settings["profile"], str(settings_path()))
    return write_settings(settings)


def read_settings() -> dict[str, Any]:
    """The lab home's settings file as a dict ({} when there is none)."""
    path = settings_path()
    if not path.exists():
        return {}
    try:
        settings = json.loads(path.read_text())
        if not isinstance(settings, dict):
            raise ValueError("it does not hold a JSON object")
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise LabError(f"The lab's settings file {path} cannot be read.", cause=str(exc),
                       fix=f"remove it and set the settings again: rm {path}; "
                       f"{SETTINGS_COMMAND} --profile cpu") from exc
    return settings


def write_settings(settings: dict[str, Any]) -> Path:
    """Replace the settings file in one step, owner-only (it may say which room is joined)."""
    path = settings_path()
    replace_file(path, json.dumps(settings, indent=2) + "\n")
    return path


def _fix(key: str, where: str, value: str) -> str:
    if where == VARIABLES[key]:
        return f"unset {where} or set it to {value}"
    return f"{SETTINGS_COMMAND} --{key} {value}"


def _own_model_fix(profile: str, where: str) -> str:
    """How to go back to `profile`'s own model (the model came from `where`)."""
    if where == VARIABLES["model"]:
        return f"unset {where} or set it to {DEFAULT_MODEL}"
    return f"{SETTINGS_COMMAND} --profile {profile} --model {DEFAULT_MODEL}"


def _checked_profile(value: str, where: str) -> str:
    if value not in PROFILES:
        raise LabError(f"Unknown profile {value[:SHOWN]!r} ({where}).",
                       cause=f"the lab's profiles are {', '.join(PROFILES)}",
                       fix=_fix("profile", where, "cpu"))
    return value


def _checked_runtime(value: str, where: str) -> str:
    if value not in RUNTIMES:
        raise LabError(f"Unknown runtime {value[:SHOWN]!r} ({where}).",
                       cause=f"the lab's runtimes are {', '.join(RUNTIMES)} (auto: Podman "
                       "where it works, else a local process)",
                       fix=_fix("runtime", where, "auto"))
    return value


def _checked_model(value: str | None, profile: str, where: str) -> str | None:
    """A catalog model that `profile` can serve, as its catalog id; None stays None."""
    if value is None:
        return None
    entry = find(value)
    if entry is None:
        raise LabError(f"Unknown model {value[:SHOWN]!r} ({where}).",
                       cause="the lab's settings take a model of its catalog: "
                       + ", ".join(e.key for e in CATALOG),
                       fix=_fix("model", where, DEFAULT_MODEL))
    if entry.needs == "gpu" and profile != "gpu":
        raise LabError(f"{entry.key} ({where}) needs the gpu profile; the lab's profile is "
                       f"{profile}.",
                       cause=f"it is a GPU model of the catalog ({entry.params_b:g}B "
                       "parameters); the cpu profile serves the bundled model",
                       fix=(f"{_own_model_fix(profile, where)}, or {SETTINGS_COMMAND} --profile "
                            f"gpu --model {entry.key} (on a host with an NVIDIA GPU)"))
    return entry.key
