"""The server only the integration tests use, stopped when the last of them has run.

`local_chat_srv`: the lab's chat server as a local process ("chat-local") beside the Podman
one, for tests that show something works under both runtimes. Its cold start began in the
background when the tests were collected (the root conftest.py). Package-scoped: the browser
tests and the notebooks that follow never use it, so its memory (about 4 GiB) is given back
before the notebooks start servers of their own (module 5 starts its fresh servers together
when the memory allows). VLLM_LAB_TEST_KEEP_SERVERS=1 keeps it, as it keeps the session's
other servers.

The local-runtime lab (`local_runtime_lab`, tests/conftest.py), where `./lab start` is
tested, lives on into the browser tests.
"""
from __future__ import annotations

import pytest

from lab_helpers import server
from lab_helpers.paths import port_base
from lab_helpers.server.config import chat_server
from tests.side_labs import keep_servers


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
