"""Servers only the integration tests use, stopped when the last of them has run.

- `local_chat_srv`: the lab's chat server as a local process ("chat-local") beside the
  Podman one, for tests that show something works under both runtimes. Its cold start began
  in the background when the tests were collected (the root conftest.py).
- `local_runtime_lab`: a second test lab whose servers run as local processes. `./lab start`
  is tested in it (its background start of the chat server), and module 1's runtime steps
  then run in it, finding that server warm as a learner would. Its own home (the test lab's,
  suffixed) and ports (the test lab's + 100), so its `chat` never clashes with the Podman one;
  the prepared models and the MCP reference servers are the test lab's (linked, not prepared
  again).

Both are package-scoped: the notebooks and the browser tests that follow never use them, so
their memory (about 4 GiB per server) is given back before the notebooks start servers of
their own (module 5 starts its fresh servers together when the memory allows).
VLLM_LAB_TEST_KEEP_SERVERS=1 keeps them, as it keeps the session's other servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab_helpers import server
from lab_helpers.paths import lab_home, port_base
from lab_helpers.server.config import chat_server


def _keep() -> bool:
    return os.environ.get("VLLM_LAB_TEST_KEEP_SERVERS") == "1"


@pytest.fixture(scope="package")
def local_chat_srv(servers_running_at_start):
    """The chat server as a local process ("chat-local"), shared by the integration tests
    (test_chat.py stops it and starts it again: later tests reach it by name). Stopped after
    them unless it ran before this session began."""
    yield server.start(chat_server("cpu", name="chat-local", port=port_base() + 10),
                       runtime="local")
    before = {(runtime, name) for runtime, name, _ident in servers_running_at_start}
    if not _keep() and ("local", "chat-local") not in before:
        server.get_runtime("local").remove("chat-local")


@pytest.fixture(scope="package")
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
    if _keep():
        return
    subprocess.run([sys.executable, "-m", "lab_helpers.cli", "down", "--all"], env=env,
                   check=False, timeout=120, capture_output=True)
