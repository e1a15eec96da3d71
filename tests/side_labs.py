"""Side labs: test labs beside the test lab, for the runtime its servers do not use.

The test lab's own servers run in the default runtime (Podman wherever it works), and so do the
notebooks under nbval. The tests that show the lab under the other runtime run in a side lab of
their own: its own home (the test lab's, suffixed) and ports (the test lab's + an offset), so
its `chat` never clashes with the test lab's; the prepared models and the MCP reference
servers are the test lab's (linked, not prepared again).

- the local-runtime lab (`local_runtime_lab`, tests/conftest.py; home + "-local-runtime",
  ports + 100): `./lab start` (tests/integration), and the browser tests where nbval's
  notebooks use Podman (module 1 finds the chat server `./lab start` started there);
- the Podman-runtime lab (`podman_runtime_lab`; home + "-podman-runtime", ports + 400): the
  browser tests where nbval's notebooks run as local processes and Podman works, as in
  `./lab test --other-runtime`;
- the other-runtime lab (home + "-other-runtime", ports + 300): `./lab test --other-runtime`
  (tests/other_runtime_run.py) runs every notebook whole there.

So JupyterLab in the browser tests always runs in the runtime nbval's notebooks of the same
run do not use (`other_runtime`): `./lab test` shows the notebooks in Podman and the browser
against local processes, `./lab test --other-runtime` the other way round.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from lab_helpers.paths import DEFAULT_PORT_BASE, default_lab_home

SIDE_LABS_IN_USE = pytest.StashKey[list[dict[str, str]]]()
"""The environments of the side labs a test of this session has used (their servers are
stopped before the first notebook: their memory is the notebooks')."""


def side_lab_env(suffix: str, port_offset: int, runtime: str,
                 beside: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a side lab beside the lab of `beside` (default: this process's
    environment, the test lab): VLLM_LAB_HOME that lab's home + `suffix`; ports that lab's +
    `port_offset`; its servers in `runtime`. Made on first use, with that lab's prepared models
    and MCP reference servers linked. VLLM_LAB_TEST_HOME/_PORT_BASE too: a pytest run in it
    (nbval) keeps to it."""
    beside = os.environ if beside is None else beside
    test_home = Path(beside.get("VLLM_LAB_HOME") or default_lab_home()).expanduser()
    home = Path(str(test_home) + suffix)
    home.mkdir(parents=True, exist_ok=True)
    (test_home / "models").mkdir(parents=True, exist_ok=True)  # shared even before first use
    for shared in ("models", "mcp-node"):
        link = home / shared
        if not link.exists() and (test_home / shared).exists():
            # The real folder, not a link to a link: Podman mounts the models from it.
            link.symlink_to((test_home / shared).resolve(), target_is_directory=True)
    base = str(int(beside.get("VLLM_LAB_PORT_BASE", DEFAULT_PORT_BASE)) + port_offset)
    return {**beside, "VLLM_LAB_HOME": str(home), "VLLM_LAB_RUNTIME": runtime,
            "VLLM_LAB_PORT_BASE": base, "VLLM_LAB_TEST_HOME": str(home),
            "VLLM_LAB_TEST_PORT_BASE": base}


def local_runtime_env(beside: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the local-runtime lab beside `beside`'s lab (default: the test
    lab's): VLLM_LAB_HOME, port base, runtime."""
    return side_lab_env("-local-runtime", 100, "local", beside)


def podman_runtime_env(beside: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the Podman-runtime lab beside `beside`'s lab (default: the test
    lab's): VLLM_LAB_HOME, port base, runtime."""
    return side_lab_env("-podman-runtime", 400, "podman", beside)


def keep_servers() -> bool:
    """VLLM_LAB_TEST_KEEP_SERVERS=1: this session's servers stay, for the next run."""
    return os.environ.get("VLLM_LAB_TEST_KEEP_SERVERS") == "1"


def stop_servers(env: dict[str, str]) -> None:
    """Stop every server of the lab `env` points at (unless they are to be kept)."""
    if keep_servers():
        return
    subprocess.run([sys.executable, "-m", "lab_helpers.cli", "down", "--all"], env=env,
                   check=False, timeout=120, capture_output=True)


def default_runtime() -> str:
    """The runtime the test lab's servers and nbval's notebooks use: "podman" or "local"."""
    from lab_helpers.server import choose_runtime
    from lab_helpers.server.config import chat_server

    return choose_runtime(chat_server("cpu"))[0]


def other_runtime() -> tuple[str | None, str]:
    """(runtime, why): the runtime nbval's notebooks do not use, or None and why there is
    none (Podman is the other runtime only where it works and the lab image is built)."""
    if default_runtime() == "podman":
        return "local", "the notebooks run in Podman"
    from lab_helpers.server.config import chat_server
    from lab_helpers.server.podman_cli import image_exists, podman_status

    usable, reason = podman_status()
    if not usable:
        return None, ("the notebooks run as local processes and Podman is not usable "
                      f"({reason}): there is no other runtime here")
    image = chat_server("cpu").image
    if not image_exists(image):
        return None, (f"the notebooks run as local processes; Podman works but {image} is "
                      "not built: run `vllm-lab build-image` (./lab test does)")
    return "podman", "the notebooks run as local processes"
