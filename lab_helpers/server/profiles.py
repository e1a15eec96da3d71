"""The lab's one settings switch: the profile every module uses, `cpu` or `gpu`.

Set once, read by every notebook (`PROFILE = lab_profile()`) and by `./lab start`'s background
start of the chat server:

1. `VLLM_LAB_PROFILE` in the environment, when set (e.g. `VLLM_LAB_PROFILE=gpu ./lab start`);
2. else what `vllm-lab profile gpu` saved in the lab home (`settings.json`);
3. else `cpu`, the profile this lab runs anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import LabError
from ..paths import lab_home

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
    if path.exists():
        try:
            value = str(json.loads(path.read_text()).get("profile", "cpu"))
        except (ValueError, AttributeError) as exc:
            raise LabError(f"The lab's settings file {path} cannot be read.", cause=str(exc),
                           fix=f"write it again: {SET_FIX}") from exc
        return _checked(value, str(path), SET_FIX), str(path)
    return "cpu", "default"


def save_profile(profile: str) -> Path:
    """Set the lab's profile for every module (kept in the lab home's settings file)."""
    _checked(profile, "the profile asked for", SET_FIX)
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {}
    if path.exists():
        try:
            settings = json.loads(path.read_text())
        except ValueError:
            settings = {}
    settings["profile"] = profile
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path


def _checked(value: str, where: str, fix: str) -> str:
    if value not in PROFILES:
        raise LabError(f"Unknown profile {value!r} in {where}.",
                       cause=f"the lab's profiles are {', '.join(PROFILES)}", fix=fix)
    return value
