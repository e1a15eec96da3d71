"""Servers only the integration tests use, stopped when the last of them has run.

- `local_chat_srv`: the lab's chat server as a local process ("chat-local") beside the
  Podman one, for tests that show something works under both runtimes. Its cold start began
  in the background when the tests were collected (the root conftest.py).
- `local_runtime_lab`: the environment of a second test lab whose servers run as local
  processes (tests/local_runtime_lab.py). `./lab start` is tested in it (its background start
  of the chat server), and module 1's runtime steps then run in it, finding that server warm
  as a learner would.

Both are package-scoped: the notebooks that follow never use them, so their memory (about
4 GiB per server) is given back before the notebooks start servers of their own (module 5
starts its fresh servers together when the memory allows). The browser tests come back to the
local-runtime lab after the notebooks, with a chat server of their own.
VLLM_LAB_TEST_KEEP_SERVERS=1 keeps them, as it keeps the session's other servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab_helpers import server
from lab_helpers.paths import port_base
from lab_helpers.server.config import chat_server
from tests.local_runtime_lab import keep_servers, local_runtime_env, stop_servers


@pytest.fixture(scope="package")
def local_chat_srv(servers_running_at_start):
    """The chat server as a local process ("chat-local"), shared by the integration tests
    (test_chat.py stops it and starts it again: later tests reach it by name). Stopped after
    them unless it ran before this session began."""
    yield server.start(chat_server("cpu", name="chat-local", port=port_base() + 10),
                       runtime="local")
    before = {(runtime, name) for runtime, name, _ident in servers_running_at_start}
    if not keep_servers() and ("local", "chat-local") not in before:
        server.get_runtime("local").remove("chat-local")


@pytest.fixture(scope="package")
def local_runtime_lab() -> Iterator[dict[str, str]]:
    """The environment of the local-runtime lab (tests/local_runtime_lab.py)."""
    env = local_runtime_env()
    yield env
    stop_servers(env)
