"""Module 1 against a real server: streaming, stats, stop, bad input, a dying server, metrics.

The session's shared local chat server ("chat-local") for the whole module; the last test
stops it mid-answer and starts it again. Model output is checked by structure only, never
by wording.
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable

import pytest

from lab_helpers import server
from lab_helpers.chat import (
    ChatSession,
    ContextLimitExceeded,
    Endpoint,
    ModelNotServed,
    ServerUnavailable,
)
from lab_helpers.metrics import MetricsRecorder, fetch_metrics, plot_metrics
from lab_helpers.widgets import ChatWidget, MetricsView

pytestmark = pytest.mark.integration

LONG_ASK = "Write a very long story about a coyote who orders rockets from ACME Corp."


@pytest.fixture(scope="module")
def srv(local_chat_srv) -> server.Server:
    """The session's shared local chat server ("chat-local"). The last test stops it mid-answer
    and starts it again (a new key): later tests reach it by its name and key file."""
    return local_chat_srv


@pytest.fixture(scope="module")
def config(srv):
    return srv.config


@pytest.fixture
def session(srv) -> ChatSession:
    return ChatSession(srv, temperature=0, max_tokens=32)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def counters(srv) -> tuple[float, float]:
    m = fetch_metrics(srv).model(srv.model_name)
    return m.prompt_tokens_total, m.generation_tokens_total


def text_of(html_value: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_value)).strip()


# -- streaming and stats ----------------------------------------------------------------------


def test_streamed_reply_has_real_token_counts(srv, session):
    prompt0, gen0 = counters(srv)
    pieces = list(session.send("Name three products ACME Corp sells."))
    stats = session.last_stats
    assert len(pieces) > 1
    turn = session.history[-1]
    assert turn.status == "done" and turn.answer == "".join(pieces) and turn.answer.strip()
    assert stats is not None and stats.ttft_s is not None
    assert 0 < stats.ttft_s <= stats.total_s
    assert stats.prompt_tokens and stats.prompt_tokens > 0
    assert stats.completion_tokens and 1 < stats.completion_tokens <= 32
    assert 1 < stats.chunks <= stats.completion_tokens
    assert stats.tokens_per_s and stats.tokens_per_s > 0
    # The counts are the server's: its own counters moved by exactly these amounts.
    assert wait_for(lambda: counters(srv)[1] - gen0 >= stats.completion_tokens, 5)
    prompt1, gen1 = counters(srv)
    assert gen1 - gen0 == stats.completion_tokens
    assert prompt1 - prompt0 == stats.prompt_tokens


def test_history_is_sent_with_the_next_message(session):
    first = session.stream("My name is Wile.")
    second = session.stream("What is my name?")
    assert [t.status for t in session.history] == ["done", "done"]
    assert second.stats.prompt_tokens > first.stats.prompt_tokens + first.stats.completion_tokens


def test_system_prompt_changes_the_prompt_token_count(session):
    session.system_prompt = "Be brief."
    short = session.stream("Hello").stats.prompt_tokens
    session.clear()
    session.system_prompt = "Be brief. " + "You answer ACME Corp customers about anvils. " * 4
    long = session.stream("Hello").stats.prompt_tokens
    assert long > short + 20


# -- stopping ---------------------------------------------------------------------------------


def test_stop_mid_answer_keeps_the_partial_text(srv, session):
    session.max_tokens = 400
    _, gen0 = counters(srv)
    got: list[str] = []

    def on_token(piece: str) -> None:
        got.append(piece)
        if len(got) == 3:
            threading.Thread(target=session.stop).start()

    began = time.monotonic()
    turn = session.stream(LONG_ASK, on_token=on_token)
    assert time.monotonic() - began < 10  # 400 tokens would take ~13 s on 2 cores
    assert turn.status == "stopped" and turn.stopped
    assert turn.answer and turn.answer == "".join(got)
    assert turn.stats.stopped and turn.stats.ttft_s > 0
    assert session.history[-1].answer == turn.answer and not session.is_generating
    # Closing the stream made vLLM abort the request: nothing runs, far fewer than 400 tokens.
    assert wait_for(lambda: fetch_metrics(srv).model().requests_running == 0, 10)
    time.sleep(0.5)
    assert counters(srv)[1] - gen0 < 200
    # The conversation goes on, with the partial answer in its context.
    session.max_tokens = 16
    after = session.stream("Thanks, that is enough.")
    assert after.status == "done" and len(session.history) == 2
    assert after.stats.prompt_tokens > turn.stats.chunks


def test_closing_the_iterator_stops_too(session):
    session.max_tokens = 400
    pieces = session.send(LONG_ASK)
    first = [next(pieces), next(pieces)]
    pieces.close()
    turn = session.history[-1]
    assert turn.stopped and turn.answer == "".join(first)
    assert session.stop() is False  # nothing left to stop


# -- bad input --------------------------------------------------------------------------------


def test_max_tokens_above_the_context_is_refused(srv, config, session):
    limit = session.max_model_len()
    assert limit == config.max_model_len  # read from GET /v1/models
    session.max_tokens = limit + 1
    with pytest.raises(ContextLimitExceeded) as info:
        session.send("Hello")
    assert f"max_model_len={limit}" in str(info.value)
    assert session.history == ()
    session.max_tokens = 8
    assert session.stream("Hello").status == "done"


def test_unknown_model_lists_the_served_ones(srv, session):
    with pytest.raises(ModelNotServed) as info:
        session.set_model("gpt-4o")
    assert srv.model_name in info.value.served and srv.model_name in str(info.value)
    assert session.model == srv.model_name
    session.set_model(srv.model_name)  # a served one is fine

    other = ChatSession(base_url=srv.base_url, api_key=srv.api_key, model="gpt-4o")
    with pytest.raises(ModelNotServed) as info:
        other.send("Hello")
    assert srv.model_name in str(info.value) and other.history == ()


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_snapshot_and_recorder_follow_a_chat(srv, session):
    before = fetch_metrics(srv).model(srv.model_name)
    assert before.kv_cache_usage is not None and 0 <= before.kv_cache_usage <= 1
    assert before.requests_running == 0 and before.requests_waiting == 0
    assert before.ttft is not None and before.ttft.count > 0  # earlier tests' requests

    session.max_tokens = 48
    with MetricsRecorder(srv, interval=0.1) as recorder:
        session.stream("Describe an ACME anvil.")
        time.sleep(0.4)
    after = fetch_metrics(srv).model(srv.model_name)
    assert after.generation_tokens_total >= before.generation_tokens_total + \
        session.last_stats.completion_tokens
    assert after.prompt_tokens_total > before.prompt_tokens_total
    assert after.ttft.count == before.ttft.count + 1

    frame = recorder.frame()
    assert len(frame) >= 5 and set(frame["model"]) == {srv.model_name}
    assert frame["requests_running"].max() == 1  # seen while the answer streamed
    assert frame["kv_cache_usage_pct"].max() > 0
    assert frame["generation_tokens_per_s"].max() > 0
    assert frame["generation_tokens_total"].is_monotonic_increasing


# -- the widget -------------------------------------------------------------------------------


def test_recorder_samples_a_busy_server_into_a_frame(srv, session):
    recorder = MetricsRecorder(srv, interval=0.2)
    with recorder:
        session.stream("Tell me about ACME's rockets.")
    assert not recorder.running and recorder.samples_taken >= 2
    frame = recorder.frame()
    assert list(frame["model"].unique()) == [srv.model_name]
    assert frame["generation_tokens_total"].is_monotonic_increasing
    assert frame["kv_cache_usage_pct"].between(0, 100).all()
    assert len(plot_metrics(recorder).axes) == 6


def test_recorder_frame_spans_start_to_stop(srv, session):
    # The thread never samples (interval 10 min): start() and stop() alone frame the answer.
    # Two answers: the server counts an answer a moment after its last token reaches us, so
    # the first one is surely counted by the time the second has ended.
    with MetricsRecorder(srv, interval=600) as recorder:
        session.stream("Tell me about ACME's rockets.")
        first = session.last_stats.completion_tokens
        session.stream("And about ACME's anvils?")
    frame = recorder.frame()
    assert len(frame) == 2
    tokens = frame["generation_tokens_total"]
    assert tokens.iloc[-1] - tokens.iloc[0] >= first
    last = frame.iloc[-1]
    assert last["ttft_s"] > 0 and last["e2e_s"] >= last["ttft_s"]


def test_metrics_view_records_and_draws_while_chatting(srv, session):
    view = MetricsView(srv, interval=0.2, redraw_interval=0.3)
    assert not view.recording and view.image == b""
    view.controls.record.value = True
    assert view.recording
    session.stream("Say hello to an ACME customer.")
    wait_for(lambda: view.image.startswith(b"\x89PNG"), timeout=10)
    view.controls.record.value = False
    assert not view.recording
    assert view.image.startswith(b"\x89PNG")
    assert "KV cache" in view.summary
    view.close()


def test_widget_end_to_end(srv):
    session = ChatSession(srv, temperature=0, max_tokens=24)
    widget = ChatWidget(session, endpoints=[Endpoint.from_server(srv)])
    widget.controls.message.value = "Say hello to an ACME customer."
    widget.controls.send.click()
    assert widget.wait(60)
    assert widget.status == "" and widget.controls.message.value == ""
    answer = text_of(widget.answer)
    # The turn shows the question at once, then the model's streamed answer under it.
    assert answer.startswith("You: Say hello to an ACME customer.")
    reply = answer.split(srv.model_name + ":", 1)[1]
    assert reply.strip()
    line = text_of(widget.metrics_line)
    assert re.search(r"TTFT \d+\.\d+ s", line) and re.search(r"\d+(\.\d)? tok/s", line)
    stats = session.last_stats
    assert stats.total_tokens == stats.prompt_tokens + stats.completion_tokens
    assert (f"{stats.prompt_tokens} prompt + {stats.completion_tokens} completion = "
            f"{stats.total_tokens} tokens") in line

    # Stop from the widget while it streams.
    widget.controls.max_tokens.value = 400
    widget.controls.message.value = LONG_ASK
    widget.controls.send.click()
    assert wait_for(lambda: len(session.history) == 2 and session.history[-1].answer, 30)
    assert widget.busy and not widget.controls.stop.disabled
    widget.controls.stop.click()
    assert widget.wait(5)  # the remaining ~390 tokens would take ~13 s
    assert "[stopped]" in widget.answer and session.history[-1].stopped
    assert session.history[-1].stats.chunks < 100
    assert text_of(widget.history).count("You:") == 1


def test_server_dying_mid_answer_then_back(srv, config):
    try:
        _dying_mid_answer_then_back(srv, config)
    finally:  # a failure here must not leave the shared server stopped for the later tests
        if srv.name not in {info.name for info in server.get_runtime("local").list()
                            if info.state == "running"}:
            server.start(config, runtime="local")


def _dying_mid_answer_then_back(srv, config):
    """Stopped mid-answer, the server either breaks the stream, sends an error event, or ends
    it cleanly with finish_reason "abort" (vLLM aborting what it generates): all three end the
    turn the same way (the unit tests in test_connect.py cover each one on its own)."""
    session = ChatSession(srv, temperature=0, max_tokens=16)
    assert session.stream("Hello").status == "done"
    widget = ChatWidget(session, endpoints=[Endpoint.from_server(srv)])
    widget.controls.max_tokens.value = 400
    widget.controls.message.value = LONG_ASK
    widget.controls.send.click()
    assert wait_for(lambda: len(session.history) == 2 and len(session.history[-1].answer) > 5)
    old_key = srv.api_key
    server.stop(srv.name)  # mid-answer
    assert widget.wait(60)
    assert "vllm-lab up" in widget.status and "Traceback" not in widget.status
    assert [t.status for t in session.history] == ["done"]  # the broken turn is rolled back
    assert widget.controls.message.value == LONG_ASK  # nothing lost: Send resends it
    assert widget.answer == "" and not widget.controls.send.disabled

    # Unreachable: same message, nothing changes.
    widget.controls.send.click()
    assert widget.wait(30)
    assert "vllm-lab up" in widget.status and len(session.history) == 1
    with pytest.raises(ServerUnavailable) as info:
        session.send("Hello?")
    assert info.value.unsent == "Hello?" and "vllm-lab up" in info.value.fix

    # Back (with a new API key): the next message works, in the session and in the widget.
    restarted = server.start(config, runtime="local")
    assert restarted.api_key != old_key
    widget.controls.max_tokens.value = 16
    widget.controls.send.click()
    assert widget.wait(60)
    assert widget.status == "" and widget.controls.message.value == ""
    assert [t.status for t in session.history] == ["done", "done"]
    assert session.history[-1].user == LONG_ASK and session.last_stats.completion_tokens > 0


# -- on the shared chat server (chat_srv): metrics auth, new metrics, logprobs, context ------


def test_metrics_need_the_key_and_the_lab_sends_it(chat_srv):
    import httpx

    from lab_helpers.metrics import MetricsUnavailable

    assert httpx.get(f"{chat_srv.base_url}/metrics", timeout=5).status_code == 401
    with pytest.raises(MetricsUnavailable) as err:
        fetch_metrics(chat_srv.base_url)
    assert "401" in err.value.what
    before = fetch_metrics(chat_srv).model(chat_srv.model_name)
    # One short request between the reads: each way of fetching must see its prompt counted.
    session = ChatSession(chat_srv, temperature=0, max_tokens=1)
    session.stream("Hello?")
    prompt = session.last_stats.prompt_tokens
    assert prompt > 0
    by_server = fetch_metrics(chat_srv).model(chat_srv.model_name)
    by_name = fetch_metrics(chat_srv.name).model(chat_srv.model_name)
    by_url = fetch_metrics(chat_srv.base_url, api_key=chat_srv.api_key).model(
        chat_srv.model_name)
    for m in (by_server, by_name, by_url):
        assert m.kv_cache_usage is not None
        assert m.prompt_tokens_total - before.prompt_tokens_total >= prompt
        assert m.prefix_cache_queries_total - before.prefix_cache_queries_total >= prompt


def test_recorder_derives_latencies_per_interval_from_a_live_server(chat_srv):
    session = ChatSession(chat_srv, temperature=0, max_tokens=24)
    with MetricsRecorder(chat_srv.name, interval=0.2) as recorder:
        session.stream("Describe an ACME anvil.")
        time.sleep(0.5)
    frame = recorder.frame()
    # A request adds to the TTFT histogram in the interval of its first token and to the
    # end-to-end one in the interval it finished: each shows up where it happened.
    assert frame["ttft_s"].dropna().gt(0).any() and frame["e2e_s"].dropna().gt(0).any()
    assert frame["e2e_s"].max() >= frame["ttft_s"].min()
    assert frame["prompt_tokens_per_s"].max() > 0 and frame["generation_tokens_per_s"].max() > 0
    assert frame["itl_s"].dropna().between(0, 5).all()
    assert frame["preemptions"].dropna().ge(0).all()


def test_prefix_cache_hits_rise_when_the_system_prompt_repeats(chat_srv):
    """vLLM 0.32 CPU has prefix caching on; it caches whole 128-token blocks, so the shared
    prefix must be longer than a block for a hit."""
    long_system = "You are ACME Corp's support assistant. " + " ".join(
        f"Policy {i}: orders ship in {i % 5 + 1} days; refunds take {i % 7 + 2} days."
        for i in range(30))
    before = fetch_metrics(chat_srv).model(chat_srv.model_name)
    session = ChatSession(chat_srv, system_prompt=long_system, temperature=0, max_tokens=8)
    session.stream("Where is my order?")
    middle = fetch_metrics(chat_srv).model(chat_srv.model_name)
    ChatSession(chat_srv, system_prompt=long_system, temperature=0, max_tokens=8).stream(
        "My anvil arrived broken.")
    after = fetch_metrics(chat_srv).model(chat_srv.model_name)
    prompt = session.last_stats.prompt_tokens
    assert prompt > 256
    hits_second = after.prefix_cache_hits_total - middle.prefix_cache_hits_total
    queries_second = after.prefix_cache_queries_total - middle.prefix_cache_queries_total
    assert hits_second >= 128 and hits_second / queries_second > 0.5
    assert middle.prefix_cache_queries_total > before.prefix_cache_queries_total


def test_logprobs_stream_with_top_alternatives(chat_srv):
    from lab_helpers.chat.logprobs import sample_with_logprobs

    greedy = sample_with_logprobs(chat_srv, "Suggest a name for our support bot.",
                                  temperature=0, top=3, max_tokens=8)
    assert len(greedy) == 8
    for choice in greedy:
        assert len(choice.alternatives) == 3 and 0 < choice.p <= 1
        assert choice.rank == 1  # greedy takes the most likely token
        probs = [p for _, p in choice.alternatives]
        assert probs == sorted(probs, reverse=True)
    hot = sample_with_logprobs(chat_srv, "Suggest a name for our support bot.",
                               temperature=1.8, top=3, max_tokens=12, seed=7)
    assert any(choice.rank != 1 for choice in hot)
    assert chat_srv.health()  # logprobs did not take the engine down (issue: no C++ compiler)


def test_conversation_grows_and_stops_before_the_context_limit(chat_srv):
    session = ChatSession(chat_srv, temperature=0, max_tokens=24)
    sizes = []
    for question in ("Hi, I ordered an anvil.", "When will it ship?", "Can I change the address?"):
        session.stream(question)
        stats = session.last_stats
        sizes.append(stats.prompt_tokens)
        assert stats.total_tokens == stats.prompt_tokens + stats.completion_tokens
    assert sizes[0] < sizes[1] < sizes[2]
    assert session.count_prompt_tokens("One more question?") > sizes[2]
    limit = session.max_model_len()
    session.max_tokens = limit - sizes[2]  # no room left for the next question
    before = session.history
    with pytest.raises(ContextLimitExceeded) as err:
        session.send("One more question?")
    assert err.value.prompt_tokens > sizes[2] and err.value.limit == limit
    assert session.history == before and "clear()" in err.value.fix


def test_export_a_real_conversation(chat_srv):
    import json

    session = ChatSession(chat_srv, temperature=0, max_tokens=16)
    session.stream("Say hello.")
    session.stream("Now in French.")
    data = json.loads(session.export_json())
    assert [t["user"] for t in data["turns"]] == ["Say hello.", "Now in French."]
    assert all(t["stats"]["completion_tokens"] > 0 for t in data["turns"])
    assert data["turns"][1]["answer"] == session.history[1].answer
    markdown = session.export_markdown()
    assert markdown.count("## ") >= 2 and session.history[0].answer.strip()[:20] in markdown
