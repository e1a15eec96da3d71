"""Podman through its CLI (JSON output), with the lab's containers.conf applied.

The CLI rather than the REST socket: there is no daemon to start, and every command can be
shown to the learner exactly as it will run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from ..errors import PodmanUnavailable
from ..paths import containers_dir

INSTALL_FIX = (
    "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc "
    "(./lab setup does it), or use runtime='local'"
)


def containers_conf() -> str:
    return str(containers_dir() / "containers.conf")


def podman_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every podman command runs with."""
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = containers_conf()
    if extra:
        env.update(extra)
    return env


def podman_argv(*args: str) -> list[str]:
    exe = shutil.which("podman") or "podman"
    return [exe, *args]


def shell_preview(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A copy-pasteable command line: CONTAINERS_CONF=... podman ..."""
    prefix = [f"CONTAINERS_CONF={shlex.quote(containers_conf())}"]
    for key, value in (env or {}).items():
        prefix.append(f"{key}={shlex.quote(value)}")
    words = list(argv)
    if words and os.path.basename(words[0]) == "podman":
        words[0] = "podman"
    return " ".join(prefix + [shlex.quote(w) for w in words])


def run_podman(
    *args: str,
    check: bool = True,
    timeout: float | None = 120,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` and capture its output; raise PodmanUnavailable if podman is absent."""
    if shutil.which("podman") is None:
        raise PodmanUnavailable(
            "Podman is not installed.", cause="the `podman` command is not on PATH", fix=INSTALL_FIX
        )
    proc = subprocess.run(
        podman_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        env=podman_env(env),
        check=False,
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def podman_json(*args: str) -> Any:
    out = run_podman(*args).stdout.strip()
    return json.loads(out) if out else []


@lru_cache(maxsize=1)
def podman_status() -> tuple[bool, str]:
    """(usable, reason). Cached: `podman info` takes a moment and does not change mid-session."""
    if shutil.which("podman") is None:
        return False, "podman is not installed"
    try:
        proc = run_podman("info", "--format", "json", check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"podman info failed: {exc}"
    if proc.returncode != 0:
        return False, f"podman info failed: {proc.stderr.strip()[-300:]}"
    try:
        info = json.loads(proc.stdout)
        version = info["version"]["Version"]
        runtime = info["host"]["ociRuntime"]["name"]
    except (ValueError, KeyError) as exc:
        return False, f"unexpected podman info output: {exc}"
    return True, f"podman {version}, runtime {runtime}"


def require_podman() -> None:
    ok, reason = podman_status()
    if not ok:
        raise PodmanUnavailable("Podman cannot run containers here.", cause=reason, fix=INSTALL_FIX)


def image_exists(image: str) -> bool:
    return run_podman("image", "exists", image, check=False).returncode == 0
