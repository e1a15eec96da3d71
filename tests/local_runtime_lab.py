"""The local-runtime test lab: a second test lab whose servers run as local processes.

The test lab's own servers run in the default runtime (Podman wherever it works), and so do the
notebooks under nbval. Where that is Podman, the tests that show the lab under the other
runtime run in this lab: `./lab start` (tests/integration) and the browser tests
(tests/browser: JupyterLab's kernels inherit this environment, so modules 1-5 in the browser
use local-process servers, module 1 finding the chat server `./lab start` started). The fixture
is `local_runtime_lab` (tests/conftest.py). Its own home (the test lab's, suffixed) and ports
(the test lab's + 100), so its `chat` never clashes with the Podman one; the prepared models
and the MCP reference servers are the test lab's (linked, not prepared again). `./lab test
--other-runtime` runs every notebook whole in the other runtime in a third lab made the same
way (`side_lab_env`; tests/other_runtime_notebooks.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_helpers.paths import lab_home, port_base

LOCAL_LAB_IN_USE = pytest.StashKey[dict[str, str]]()
"""The local-runtime lab's environment, once a test of this session has used it."""


def side_lab_env(suffix: str, port_offset: int, runtime: str) -> dict[str, str]:
    """The environment of a second test lab beside the test lab (VLLM_LAB_HOME: the test
    lab's home + `suffix`; ports: the test lab's + `port_offset`; its servers in `runtime`),
    made on first use, with the test lab's prepared models and MCP reference servers linked.
    VLLM_LAB_TEST_HOME/_PORT_BASE too: a pytest run in it (nbval) keeps to it."""
    test_home = lab_home()
    home = Path(str(test_home) + suffix)
    home.mkdir(exist_ok=True)
    (test_home / "models").mkdir(parents=True, exist_ok=True)  # shared even before first use
    for shared in ("models", "mcp-node"):
        link = home / shared
        if not link.exists() and (test_home / shared).exists():
            link.symlink_to(test_home / shared, target_is_directory=True)
    base = str(port_base() + port_offset)
    return {**os.environ, "VLLM_LAB_HOME": str(home), "VLLM_LAB_RUNTIME": runtime,
            "VLLM_LAB_PORT_BASE": base, "VLLM_LAB_TEST_HOME": str(home),
            "VLLM_LAB_TEST_PORT_BASE": base}


def local_runtime_env() -> dict[str, str]:
    """The environment of the local-runtime lab (VLLM_LAB_HOME, port base, runtime)."""
    return side_lab_env("-local-runtime", 100, "local")


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
