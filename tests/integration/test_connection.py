"""Every client the lab makes follows a lab server that was replaced under it.

A replaced server (the same name started again) has a new API key in its key file. Each
client is made once, the servers are replaced, and each client's next call must succeed as
it is: chat, structured outputs, the tool loop, metrics, logprobs and the semantic search.
The clients that keep a connection must have got there through the 401 path (the key file
read again once), not by luck.

Replacing costs a start per server, so the test replaces servers the suite keeps anyway: the
session's shared local chat server (`local_chat_srv`, "chat-local") and module 1's embeddings
server ("embed", default runtime), left running for the notebook to reuse. Later tests reach
both through their names and key files, as any client does. The shared "chat" server the
notebooks chat with is never replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from lab_helpers import server, structured
from lab_helpers.chat import ChatSession
from lab_helpers.chat.logprobs import sample_with_logprobs
from lab_helpers.metrics import MetricsRecorder, fetch_metrics
from lab_helpers.server.config import chat_server, embedding_server
from lab_helpers.structured import StructuredClient
from lab_helpers.support import SupportDesk
from lab_helpers.support.search import SemanticIndex
from lab_helpers.tools import ToolExecutor, ToolLoop, acme_registry, approve_all, named
from lab_helpers.tools.registry import ToolRegistry

pytestmark = pytest.mark.integration

FAQ = ["Returns are free within 30 days of delivery.", "Support answers from 9 to 5 on weekdays."]


@pytest.fixture(scope="module")
def embed_config():
    return embedding_server("cpu")


@pytest.fixture(scope="module")
def servers(local_chat_srv, embed_config) -> tuple[server.Server, server.Server]:
    return local_chat_srv, server.start(embed_config)


def clients(chat: server.Server, embed: server.Server,
            desk: SupportDesk) -> tuple[dict[str, Callable[[], object]], dict[str, Any]]:
    """One call per kind of client, each client made once; and the clients that keep a
    connection, by name."""
    session = ChatSession(chat, temperature=0, max_tokens=8)
    gen = StructuredClient(chat, max_tokens=8)
    one_tool = ToolRegistry()  # one tool: a short prompt (the tool loop's own tests use all)
    one_tool.add(acme_registry(desk).get("get_order_status"))
    loop = ToolLoop(chat, ToolExecutor(one_tool, decide=approve_all), max_tokens=80,
                    max_rounds=1)
    recorder = MetricsRecorder(chat, interval=60)  # sampled by hand, no thread
    index = SemanticIndex(embed, FAQ)
    calls: dict[str, Callable[[], object]] = {
        "chat": lambda: session.stream("Say hello.").status == "done",
        "structured": lambda: gen.run("Sentiment of: I love it",
                                      structured.choice(["positive", "negative"])).valid,
        "tool loop": lambda: bool(loop.run("Where is my order ORD-78432?",
                                           tool_choice=named("get_order_status")).calls),
        "metrics": lambda: recorder.sample() is not None or recorder.last_error,
        "metrics by name": lambda: bool(fetch_metrics(chat.name).models),
        "logprobs": lambda: len(sample_with_logprobs(chat, "Say hello.", temperature=0,
                                                     max_tokens=3)) > 0,
        "search": lambda: len(index.search("Can I send it back?", k=1)) == 1,
    }
    kept = {"chat": session, "structured": gen, "tool loop": loop, "metrics": recorder,
            "search": index}
    return calls, kept


def outcomes(calls: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Each call's outcome: "ok", or what went wrong (all calls run, so a failure names every
    client that does not follow the server)."""
    out = {}
    for name, call in calls.items():
        try:
            result = call()
            out[name] = "ok" if result is True else f"unexpected result: {result!r}"
        except Exception as exc:  # noqa: BLE001 - reported per client
            out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return out


def test_every_client_follows_a_replaced_server(servers, embed_config, tmp_path):
    chat, embed = servers
    calls, kept = clients(chat, embed, SupportDesk(tmp_path / "acme.sqlite"))
    everything_ok = dict.fromkeys(calls, "ok")
    assert outcomes(calls) == everything_ok
    old_keys = (chat.api_key, embed.api_key)

    configs = (chat_server("cpu", name=chat.name, port=chat.info.port), embed_config)
    runtimes = (chat.runtime.kind, embed.runtime.kind)
    # Both at once (each name has its own start lock): two cold starts overlap their waits.
    with ThreadPoolExecutor(2) as pool:
        replaced = tuple(pool.map(lambda config, kind: server.start(config, runtime=kind,
                                                                    reuse=False),
                                  configs, runtimes))
    assert [srv.reused for srv in replaced] == [False, False]
    assert old_keys[0] != replaced[0].api_key and old_keys[1] != replaced[1].api_key
    assert [srv.base_url for srv in replaced] == [chat.base_url, embed.base_url]

    assert outcomes(calls) == everything_ok
    # Each kept client got there by its connection re-reading the key file once on a 401.
    reloads = {name: client.connection.key_reloads for name, client in kept.items()}
    assert reloads == dict.fromkeys(kept, 1)
