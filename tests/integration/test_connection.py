"""Every client the lab makes follows a lab server that was replaced under it; a different
config under the same name replaces the running server.

A replaced server (the same name started again) has a new API key in its key file. Each
client is made once, the servers are replaced, and each client's next call must succeed as
it is: chat, structured outputs, the tool loop, metrics, logprobs and the semantic search.
The clients that keep a connection must have got there through the 401 path (the key file
read again once), not by luck.

Replacing costs a start per server, so the test replaces servers the suite keeps anyway: the
session's shared local chat server (`local_chat_srv`, "chat-local", started again as it is:
`reuse=False`) and module 1's embeddings server ("embed", default runtime). The embeddings
server is first started with another setting (`--max-num-seqs 8`) and replaced by module 1's
own config: that replacement is also the check that a different config replaces a running
server (the old one goes, a new one starts, the chat servers stay), and it leaves "embed" as
module 1 starts it, for test_server_lifecycle.py and the notebook to reuse (one cold start
fewer for each). Later tests reach both through their names and key files, as any client
does. The shared "chat" server the notebooks chat with is never replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
def other_embed_config(embed_config):
    """Module 1's embeddings server with another setting: the server that gets replaced."""
    return embed_config.replace(extra_args=("--max-num-seqs", "8"))


@pytest.fixture(scope="module")
def servers(local_chat_srv, other_embed_config) -> tuple[server.Server, server.Server]:
    return local_chat_srv, server.start(other_embed_config)


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


@dataclass
class Replacement:
    before: tuple[server.Server, ...]
    after: tuple[server.Server, ...]
    keys_before: tuple[str, ...]
    outcomes_before: dict[str, str]
    outcomes_after: dict[str, str]
    key_reloads: dict[str, int]
    shared_chat: tuple[str, str]  # the notebooks' chat server: ident before, ident after
    shared_chat_healthy: bool


@pytest.fixture(scope="module")
def replacement(servers, embed_config, chat_srv, tmp_path_factory) -> Replacement:
    """Clients made, both servers replaced at once, the same clients called again."""
    chat, embed = servers
    desk = SupportDesk(tmp_path_factory.mktemp("connection") / "acme.sqlite")
    calls, kept = clients(chat, embed, desk)
    before = outcomes(calls)
    keys = (chat.api_key, embed.api_key)  # read from the key files now: they change
    shared_before = chat_srv.info.ident
    # Chat: the same config, not reused. Embeddings: module 1's config replaces the other one.
    configs = (chat_server("cpu", name=chat.name, port=chat.info.port), embed_config)
    runtimes = (chat.runtime.kind, embed.runtime.kind)
    reuse = (False, True)
    # Both at once (each name has its own start lock): two cold starts overlap their waits.
    with ThreadPoolExecutor(2) as pool:
        after = tuple(pool.map(lambda config, kind, again: server.start(
            config, runtime=kind, reuse=again), configs, runtimes, reuse))
    now = outcomes(calls)
    reloads = {name: client.connection.key_reloads for name, client in kept.items()}
    shared = server.get(chat_srv.name)
    return Replacement((chat, embed), after, keys, before, now, reloads,
                       (shared_before, shared.info.ident), shared.health())


def test_every_client_follows_a_replaced_server(replacement):
    everything_ok = dict.fromkeys(replacement.outcomes_before, "ok")
    assert replacement.outcomes_before == everything_ok
    (chat, embed), replaced = replacement.before, replacement.after
    assert [srv.reused for srv in replaced] == [False, False]
    old_keys = replacement.keys_before
    assert old_keys[0] != replaced[0].api_key and old_keys[1] != replaced[1].api_key
    assert [srv.base_url for srv in replaced] == [chat.base_url, embed.base_url]

    assert replacement.outcomes_after == everything_ok
    # Each kept client got there by its connection re-reading the key file once on a 401.
    assert replacement.key_reloads == dict.fromkeys(replacement.key_reloads, 1)


def test_a_different_config_replaces_the_running_server(replacement, embed_config,
                                                        other_embed_config):
    """Same name, other config: the old server goes, a new one starts; the others stay."""
    old, new = replacement.before[1], replacement.after[1]
    assert old.info.config_hash == other_embed_config.config_hash()
    assert not new.reused and new.info.ident != old.info.ident
    assert new.info.config_hash == embed_config.config_hash() != other_embed_config.config_hash()
    assert new.health()
    running = new.runtime.find(embed_config.name)
    assert running is not None and running.ident == new.info.ident
    assert old.info.ident not in {i.ident for i in server.list_servers()}
    ident_before, ident_after = replacement.shared_chat
    assert ident_after == ident_before and replacement.shared_chat_healthy, \
        "replacing the embeddings server left the chat server alone"
