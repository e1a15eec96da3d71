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

A session whose tests use the shared chat servers (`chat_srv`; `local_chat_srv`, in
tests/integration/conftest.py) starts them in the background as soon as the tests are
collected, each in a process of its own and both at once (a start keeps about one core busy),
so their cold starts overlap the unit tests that run first; the fixtures then find them (or
wait for them on the server's start lock, as a second notebook would) and reuse them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

TEST_HOME = Path(os.environ.get("VLLM_LAB_TEST_HOME",
                                Path.home() / ".cache" / "vllm-lab-test")).expanduser()
os.environ["VLLM_LAB_HOME"] = str(TEST_HOME)
os.environ["VLLM_LAB_PORT_BASE"] = os.environ.get("VLLM_LAB_TEST_PORT_BASE", "18000")

_RUNNING_AT_START = pytest.StashKey[set]()
_EARLY_STARTS = pytest.StashKey[list[subprocess.Popen]]()
# What each shared server's fixture runs, in a process of its own (its own environment: a unit
# test that points VLLM_LAB_HOME elsewhere meanwhile cannot move it), by fixture name.
EARLY_STARTS = {
    "chat_srv": (
        "from lab_helpers import server\n"
        "from lab_helpers.server.config import chat_server\n"
        "server.start(chat_server('cpu'))\n"
    ),
    "local_chat_srv": (
        "from lab_helpers import server\n"
        "from lab_helpers.paths import port_base\n"
        "from lab_helpers.server.config import chat_server\n"
        "server.start(chat_server('cpu', name='chat-local', port=port_base() + 10),"
        " runtime='local')\n"
    ),
}


@pytest.fixture(scope="session")
def chat_srv():
    """The lab's chat server (cpu profile, default runtime) in the test lab.

    Started once (or reused from an earlier run) and shared by every module's integration
    tests and by the notebooks, which start the same config under the same name. Its cold
    start began in the background when the tests were collected (`pytest_collection_finish`):
    this waits for that start on the server's start lock and reuses the server.
    """
    from lab_helpers import server
    from lab_helpers.server.config import chat_server

    return server.start(chat_server("cpu"))


@pytest.fixture(scope="session")
def servers_running_at_start(request) -> set[tuple[str, str, str]]:
    """(runtime, name, ident) of the test-lab servers that ran before this session began:
    not this session's to stop."""
    return request.config.stash.get(_RUNNING_AT_START, set())


def _server_identities() -> set[tuple[str, str, str]]:
    from lab_helpers import server

    return {(info.runtime, info.name, info.ident) for info in server.list_servers()}


def pytest_sessionstart(session) -> None:
    session.config.stash[_RUNNING_AT_START] = _server_identities()


def pytest_collection_finish(session) -> None:
    """Start the shared chat servers in the background that a collected test needs."""
    if session.config.option.collectonly:
        return
    from lab_helpers.paths import logs_dir

    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    procs = []
    for fixture, code in EARLY_STARTS.items():
        if fixture in used:
            with (logs_dir() / f"early-start-{fixture}.log").open("wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, env=dict(os.environ)))
    session.config.stash[_EARLY_STARTS] = procs


def _end_early_starts(session) -> None:
    """A background start still running at the end (a short or interrupted session) is
    interrupted: `Runtime.start` then removes what it launched."""
    for proc in session.config.stash.get(_EARLY_STARTS, []):
        if proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def pytest_runtest_setup(item) -> None:
    """Before the first notebook: the side labs' servers are stopped (the tests that use them,
    integration and browser, come first; the memory is the notebooks')."""
    from tests.side_labs import SIDE_LABS_IN_USE, stop_servers

    envs = item.config.stash.get(SIDE_LABS_IN_USE, [])
    if envs and item.nodeid.startswith("notebooks/"):
        del item.config.stash[SIDE_LABS_IN_USE]
        for env in envs:
            stop_servers(env)


def pytest_sessionfinish(session, exitstatus) -> None:
    from tests.side_labs import keep_servers

    _end_early_starts(session)
    if keep_servers():
        return
    from lab_helpers import server

    before = session.config.stash.get(_RUNNING_AT_START, set())
    for runtime, name, _ident in _server_identities() - before:
        server.get_runtime(runtime).remove(name)
