"""The local-runtime test lab: a second test lab whose servers run as local processes.

The test lab's own servers run in the default runtime (Podman wherever it works), and so do
the notebooks under nbval. Where that is Podman, the tests that show the lab under the other
runtime run in this lab: `./lab start` and module 1's runtime steps (tests/integration), and
the browser tests (tests/browser: JupyterLab's kernels inherit this environment, so modules
1-5 in the browser use local-process servers, module 1 finding the chat server `./lab start`
started). The fixture is `local_runtime_lab` (tests/conftest.py). Its own home (the test lab's,
suffixed) and ports (the test lab's + 100), so its `chat` never clashes with the Podman one;
the prepared models and the MCP reference servers are the test lab's (linked, not prepared
again).
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


def local_runtime_env() -> dict[str, str]:
    """The environment of the local-runtime lab (VLLM_LAB_HOME, port base, runtime), made
    on first use."""
    test_home = lab_home()
    home = Path(str(test_home) + "-local-runtime")
    home.mkdir(exist_ok=True)
    for shared in ("models", "mcp-node"):
        link = home / shared
        if not link.exists() and (test_home / shared).exists():
            link.symlink_to(test_home / shared, target_is_directory=True)
    return {**os.environ, "VLLM_LAB_HOME": str(home), "VLLM_LAB_RUNTIME": "local",
            "VLLM_LAB_PORT_BASE": str(port_base() + 100)}


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
