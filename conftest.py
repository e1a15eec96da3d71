"""The test suite's own lab, for every test path (tests/ and the notebooks under nbval).

Tests never touch the learner's lab: before anything imports `lab_helpers`, this file points
VLLM_LAB_HOME at the test lab (`VLLM_LAB_TEST_HOME`, default ~/.cache/vllm-lab-test) and moves
every default port up (`VLLM_LAB_TEST_PORT_BASE`, default 18000). Server records, keys, logs,
prepared models, Podman container names (`vllm-lab-<instance>-<name>`) and stale cleanup all
follow the lab home, and the notebooks under nbval and JupyterLab in the browser tests inherit
the same environment. When the session ends it stops the test-lab servers it started, and
only those: a server that was running when it began (another pytest session's, or one kept
with VLLM_LAB_TEST_KEEP_SERVERS=1) is left alone. VLLM_LAB_TEST_KEEP_SERVERS=1 keeps this
session's servers too, for the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_HOME = Path(os.environ.get("VLLM_LAB_TEST_HOME",
                                Path.home() / ".cache" / "vllm-lab-test")).expanduser()
os.environ["VLLM_LAB_HOME"] = str(TEST_HOME)
os.environ["VLLM_LAB_PORT_BASE"] = os.environ.get("VLLM_LAB_TEST_PORT_BASE", "18000")

_RUNNING_AT_START = pytest.StashKey[set]()


@pytest.fixture(scope="session")
def chat_srv():
    """The lab's chat server (cpu profile, default runtime) in the test lab.

    Started once (or reused from an earlier run) and shared by every module's integration
    tests and by the notebooks, which start the same config under the same name.
    """
    from lab_helpers import server
    from lab_helpers.server.config import chat_server

    return server.start(chat_server("cpu"))


@pytest.fixture(scope="session")
def local_chat_srv():
    """The same chat server as a local process ("chat-local"), for tests that show a module
    works under both runtimes. Started once, shared, stopped at the end of the session."""
    from lab_helpers import server
    from lab_helpers.server.config import chat_server
    from lab_helpers.paths import port_base

    return server.start(chat_server("cpu", name="chat-local", port=port_base() + 10),
                        runtime="local")


def _server_identities() -> set[tuple[str, str, str]]:
    from lab_helpers import server

    return {(info.runtime, info.name, info.ident) for info in server.list_servers()}


def pytest_sessionstart(session) -> None:
    session.config.stash[_RUNNING_AT_START] = _server_identities()


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("VLLM_LAB_TEST_KEEP_SERVERS") == "1":
        return
    from lab_helpers import server

    before = session.config.stash.get(_RUNNING_AT_START, set())
    for runtime, name, ident in _server_identities() - before:
        server.get_runtime(runtime).remove(name)
