"""The lab's one settings switch: the profile every module uses, `cpu` or `gpu`.

Set once, read by every notebook (`PROFILE = lab_profile()`) and by `./lab start`'s background
start of the chat server:

1. `VLLM_LAB_PROFILE` in the environment, when set (e.g. `VLLM_LAB_PROFILE=gpu ./lab start`);
2. else what `vllm-lab profile gpu` saved in the lab home (`settings.json`);
3. else `cpu`, the profile this lab runs anywhere.

The same file records the room this lab has joined, if any (`vllm-lab join`, room_settings.py):
then the chat server every module starts is the room's (its key is in its own 0600 file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..paths import lab_home, replace_file

PROFILES = ("cpu", "gpu")
SETTINGS_FILE = "settings.json"
SET_FIX = "./.venv/bin/vllm-lab profile cpu"


def settings_path() -> Path:
    return lab_home() / SETTINGS_FILE


def lab_profile() -> str:
    """The profile the lab is set to (see the module's docstring for the order)."""
    return profile_and_source()[0]


def profile_and_source() -> tuple[str, str]:
    """(profile, where it was set: the variable, the settings file, or the default)."""
    value = os.environ.get("VLLM_LAB_PROFILE", "").strip()
    if value:
        return _checked(value, "VLLM_LAB_PROFILE", "unset VLLM_LAB_PROFILE or set it to cpu"), \
            "VLLM_LAB_PROFILE"
    path = settings_path()
    settings = read_settings()
    if "profile" in settings:
        return _checked(str(settings["profile"]), str(path), SET_FIX), str(path)
    return "cpu", "default"


def read_settings() -> dict[str, Any]:
    """The lab home's settings file as a dict ({} when there is none)."""
    path = settings_path()
    if not path.exists():
        return {}
    try:
        settings = json.loads(path.read_text())
        if not isinstance(settings, dict):
            raise ValueError("it does not hold a JSON object")
    except ValueError as exc:
        raise LabError(f"The lab's settings file {path} cannot be read.", cause=str(exc),
                       fix=f"remove it and set the profile again: rm {path}; {SET_FIX}") from exc
    return settings


def write_settings(settings: dict[str, Any]) -> Path:
    """Replace the settings file in one step, owner-only (it may say which room is joined)."""
    path = settings_path()
    replace_file(path, json.dumps(settings, indent=2) + "\n")
    return path


def save_profile(profile: str) -> Path:
    """Set the lab's profile for every module (kept in the lab home's settings file)."""
    _checked(profile, "the profile asked for", SET_FIX)
    settings = read_settings()
    settings["profile"] = profile
    return write_settings(settings)


def _checked(value: str, where: str, fix: str) -> str:
    if value not in PROFILES:
        raise LabError(f"Unknown profile {value!r} in {where}.",
                       cause=f"the lab's profiles are {', '.join(PROFILES)}", fix=fix)
    return value
