"""The local-runtime lab: a second test lab whose servers run as local processes.

`./lab start` is tested in it (its background start of the chat server), and module 1's
runtime steps then run in it, finding that server warm as a learner would. Its own home
(the test lab's, suffixed) and ports (the test lab's + 100), so its `chat` never clashes with
the Podman one; the prepared models and the MCP reference servers are the test lab's (linked,
not prepared again). Its servers are stopped when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_helpers.paths import lab_home, port_base


@pytest.fixture(scope="session")
def local_runtime_lab() -> dict[str, str]:
    """The environment of the local-runtime lab (VLLM_LAB_HOME, port base, runtime)."""
    test_home = lab_home()
    home = Path(str(test_home) + "-local-runtime")
    home.mkdir(exist_ok=True)
    for shared in ("models", "mcp-node"):
        link = home / shared
        if not link.exists() and (test_home / shared).exists():
            link.symlink_to(test_home / shared, target_is_directory=True)
    env = {**os.environ, "VLLM_LAB_HOME": str(home), "VLLM_LAB_RUNTIME": "local",
           "VLLM_LAB_PORT_BASE": str(port_base() + 100)}
    yield env
    subprocess.run([sys.executable, "-m", "lab_helpers.cli", "down", "--all"], env=env,
                   check=False, timeout=120, capture_output=True)
