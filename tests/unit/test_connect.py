"""The connection layer against a real HTTP server that fails on purpose (no model).

The failures come from the wire, not from hand-made exceptions: a small threaded HTTP server
answers with a status and a vLLM-shaped error body, delays, breaks a stream, or checks the
Bearer key, and the real `openai` client and `httpx` meet it. So each case checks which
library error the lab sees for that failure, and which `LabError` (with cause and fix) it
becomes. It also counts requests: the policy says no retries, except one after a 401 with a
new key file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest

from lab_helpers.chat import ChatSession
from lab_helpers.connect import (
    AnswerCut,
    Connection,
    KeyRejected,
    ModelNotServed,
    RequestRejected,
    ServerRequestError,
    ServerUnavailable,
    translate,
)
from lab_helpers.errors import LabError
from lab_helpers.server import free_port
from lab_helpers.server.keys import new_api_key
from lab_helpers.tools import ToolExecutor, ToolLoop, ToolRegistry

MODEL = "stub-model"


class _Handler(BaseHTTPRequestHandler):
    server: _Stub

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer()

    def _answer(self) -> None:
        stub = self.server
        stub.requests += 1
        time.sleep(stub.delay)
        if self.headers.get("Authorization") != f"Bearer {stub.key}":
            return self._json(401, {"error": "Unauthorized"})
        if stub.status != 200:
            return self._json(stub.status, {"error": {"message": stub.reason,
                                                      "type": "BadRequestError"}})
        if self.path == "/v1/models":
            return self._json(200, {"data": [{"id": MODEL, "max_model_len": 2048}]})
        if stub.stream is not None:
            return self._stream(stub.stream)
        self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL,
                         "choices": [{"index": 0, "finish_reason": stub.finish, "message": {
                             "role": "assistant", "content": "hello"}}]})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, how: str) -> None:
        """One content chunk, then: an error event (vLLM failing mid-answer), a connection
        closed in the middle of the chunked body (a server that died: "cut"), or a complete
        body whose last choice says `how` ("stop", "abort": vLLM shutting down, "none": no
        finish reason at all) followed by the usage chunk and [DONE]."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(choices: list[dict[str, Any]], **more: Any) -> str:
            return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk",
                                          "created": 0, "model": MODEL, "choices": choices,
                                          **more}) + "\n\n"

        events = [chunk([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}])]
        if how == "error":
            events.append(f"data: {json.dumps({'error': {'message': 'engine died'}})}\n\n")
        elif how != "cut":
            finish = None if how == "none" else how
            usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
            events += [chunk([{"index": 0, "delta": {}, "finish_reason": finish}]),
                       chunk([], usage=usage), "data: [DONE]\n\n", ""]  # "": the last chunk
        for event in events:
            data = event.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.close_connection = True  # "cut" and "error": no closing chunk, a broken body


class _Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key = "key-1"
        self.status = 200
        self.reason = ""
        self.delay = 0.0
        self.stream: str | None = None
        self.finish = "stop"  # of an answer that is not streamed
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def stub() -> Iterator[_Stub]:
    server = _Stub()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def chat(conn: Connection) -> Any:
    return conn.request(lambda client: client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]), what="the test request")


def models(conn: Connection) -> Any:
    return conn.get("/v1/models", timeout=min(conn.timeout, 10.0))


# -- HTTP statuses, through the openai client and through the lab's own GET ---------------------


@pytest.mark.parametrize("send", [chat, models], ids=["openai", "httpx"])
@pytest.mark.parametrize("status, kind, fix", [
    (400, RequestRejected, "send again"),
    (404, RequestRejected, "send again"),
    (422, RequestRejected, "send again"),
    (500, ServerUnavailable, "vllm-lab logs"),
    (503, ServerUnavailable, "vllm-lab logs"),
])
def test_a_status_becomes_the_labs_error_with_the_servers_reason(stub, send, status, kind, fix):
    stub.status, stub.reason = status, "uniqueItems is not supported"
    with pytest.raises(kind) as caught:
        send(Connection(stub.url, api_key="key-1"))
    err = caught.value
    assert type(err) is kind and fix in err.fix and err.cause
    assert "uniqueItems is not supported" in err.what
    if isinstance(err, RequestRejected):
        assert err.status == status and err.reason == "uniqueItems is not supported"
    assert stub.requests == 1  # no retries


def test_a_rejection_carries_the_callers_cause_and_fix(stub):
    stub.status, stub.reason = 400, "bad schema"
    conn = Connection(stub.url, api_key="key-1")
    with pytest.raises(RequestRejected) as caught:
        conn.request(lambda c: c.chat.completions.create(model=MODEL, messages=[]),
                     what="the json constraint", rejected=("a cause", "a fix"))
    assert caught.value.what == "The server rejected the json constraint: bad schema"
    assert (caught.value.cause, caught.value.fix) == ("a cause", "a fix")


# -- the key -------------------------------------------------------------------------------------


@pytest.mark.parametrize("send", [chat, models], ids=["openai", "httpx"])
def test_a_key_given_by_hand_is_not_re_read(stub, send):
    conn = Connection(stub.url, api_key="wrong", key_hint="use Target.from_server(srv)")
    with pytest.raises(KeyRejected) as caught:
        send(conn)
    assert "(401)" in caught.value.what and caught.value.fix == "use Target.from_server(srv)"
    assert caught.value.what.startswith(stub.url)  # a URL keeps its case, even first
    assert stub.requests == 1 and conn.key_reloads == 0


@pytest.mark.parametrize("send", [chat, models], ids=["openai", "httpx"])
def test_a_replaced_servers_new_key_is_read_once_on_a_401(stub, send, lab_home):
    stub.key = new_api_key("stub")
    conn = Connection(stub.url, server_name="stub")
    send(conn)
    stub.key = new_api_key("stub")  # the server was replaced: a new key in its key file
    send(conn)  # 401, the key file read again, sent again
    assert conn.key_reloads == 1 and conn.api_key == stub.key and stub.requests == 3
    send(conn)  # the new key is kept
    assert conn.key_reloads == 1 and stub.requests == 4


def test_a_401_with_an_unchanged_key_file_is_not_sent_again(stub, lab_home):
    new_api_key("stub")  # the server holds another key than the file
    conn = Connection(stub.url, server_name="stub")
    with pytest.raises(KeyRejected) as caught:
        chat(conn)
    assert stub.requests == 1 and "vllm-lab down stub" in caught.value.fix


# -- no answer -----------------------------------------------------------------------------------


def test_nothing_listening_says_how_to_start_the_server():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnavailable) as by_openai:
        chat(Connection(url, api_key="k"))
    with pytest.raises(ServerUnavailable) as by_get:
        models(Connection(url, api_key="k"))
    for err in (by_openai.value, by_get.value):
        assert "vllm-lab up" in err.fix and "stopped, crashed" in err.cause
    assert by_openai.value.what.startswith("Cannot reach")
    assert by_get.value.what.startswith(f"Cannot read {url}/v1/models")


def test_a_lab_server_that_failed_is_looked_up_again_before_the_next_request(lab_home):
    """After a failure, `check()` (ChatSession runs it before building a turn) finds the
    server by name again, and says at once that it is not running."""
    conn = Connection(f"http://127.0.0.1:{free_port()}", server_name="gone", api_key="k")
    conn.check()  # nothing failed yet: nothing to look up
    with pytest.raises(ServerUnavailable):
        models(conn)
    with pytest.raises(ServerUnavailable) as err:
        conn.check()
    assert err.value.what == "The lab server 'gone' is not running."
    assert "name='gone'" in err.value.fix


@pytest.mark.parametrize("send", [chat, models], ids=["openai", "httpx"])
def test_a_timeout_is_not_retried(stub, send):
    """The error says it timed out, and the server saw one request (the SDK's retries would
    have sent the others before the error reached the caller). No wall-clock bound: under a
    loaded machine the client's own timeout fires late."""
    stub.delay = 1.5
    conn = Connection(stub.url, api_key="key-1", timeout=0.5)
    with pytest.raises(ServerUnavailable) as caught:
        send(conn)
    assert "in time" in caught.value.what and "timeout=" in caught.value.fix
    assert stub.requests == 1


def test_a_server_dying_mid_answer_rolls_the_turn_back(stub):
    stub.stream = "cut"
    session = ChatSession(base_url=stub.url, api_key="key-1", model=MODEL)
    pieces: list[str] = []
    with pytest.raises(ServerUnavailable) as caught:
        pieces.extend(session.send("Hello"))
    err = caught.value
    assert pieces == ["Hel"] and err.partial == "Hel" and err.unsent == "Hello"
    assert "mid-answer" in err.what and "vllm-lab up" in err.fix and session.history == ()


def test_an_error_event_in_the_stream_is_a_server_going_away(stub):
    """What vLLM sends when it is stopped mid-answer: an error event, not a broken stream."""
    stub.stream = "error"
    session = ChatSession(base_url=stub.url, api_key="key-1", model=MODEL)
    with pytest.raises(ServerUnavailable) as caught:
        list(session.send("Hello"))
    err = caught.value
    assert "engine died" in err.what and "mid-answer" in err.what and err.partial == "Hel"
    assert "vllm-lab up" in err.fix and "vllm-lab logs" in err.cause


@pytest.mark.parametrize("finish", ["abort", "none"])
def test_an_answer_the_server_ends_without_finishing_is_a_server_going_away(stub, finish):
    """vLLM aborts running answers when it shuts down; the client may get a clean end of
    stream with finish_reason "abort" (seen 1 in 6 stops of a local server mid-answer)."""
    stub.stream = finish
    session = ChatSession(base_url=stub.url, api_key="key-1", model=MODEL)
    with pytest.raises(ServerUnavailable) as caught:
        list(session.send("Hello"))
    err = caught.value
    assert "mid-answer" in err.what and err.partial == "Hel" and err.unsent == "Hello"
    assert "shutting down" in err.cause and "vllm-lab up" in err.fix and session.history == ()
    loop = ToolLoop(executor=ToolExecutor(ToolRegistry()), model=MODEL,
                    client=openai.OpenAI(base_url=f"{stub.url}/v1", api_key="key-1"))
    with pytest.raises(ServerUnavailable, match="round 1 of the tool loop"):
        loop.run("Hello", stream=True)
    stub.stream, stub.finish = None, "abort" if finish == "abort" else None  # not streamed
    with pytest.raises(ServerUnavailable, match="round 1 of the tool loop"):
        loop.run("Hello")


def test_a_huge_finish_reason_is_cut_in_the_error():
    err = translate(AnswerCut("x" * 100_000), label="the lab server 'chat'", partial="Hel")
    assert isinstance(err, ServerUnavailable) and len(err.what) < 200


def test_a_complete_stream_is_a_finished_answer(stub):
    stub.stream = "stop"
    session = ChatSession(base_url=stub.url, api_key="key-1", model=MODEL)
    assert session.stream("Hello").status == "done" and session.last_stats.completion_tokens == 1
    loop = ToolLoop(executor=ToolExecutor(ToolRegistry()), model=MODEL,
                    client=openai.OpenAI(base_url=f"{stub.url}/v1", api_key="key-1"))
    assert loop.run("Hello", stream=True).answer == "Hel"
    stub.stream = None
    assert loop.run("Hello").answer == "hello"


# -- what is not an HTTP failure -----------------------------------------------------------------


def test_a_model_the_server_does_not_serve_lists_the_served_ones(stub):
    with pytest.raises(ModelNotServed) as caught:
        Connection(stub.url, api_key="key-1").require_model("gpt-4o")
    assert caught.value.served == [MODEL] and MODEL in caught.value.what


def test_other_failures_are_still_lab_errors_and_lab_errors_pass_unchanged():
    err = translate(ValueError("odd JSON"), label="http://x", what="the request")
    assert type(err) is ServerRequestError and "odd JSON" in err.what
    assert "vllm-lab logs" in err.fix
    own = LabError("already explained", fix="do this")
    assert translate(own, label="http://x") is own


def test_a_client_given_by_the_caller_is_used_as_it_is(stub):
    client = openai.OpenAI(base_url=f"{stub.url}/v1", api_key="key-1", max_retries=0)
    conn = Connection.of(client)
    assert conn.openai() is client and conn.base_url == stub.url
    assert chat(conn).choices[0].message.content == "hello"


def test_a_batch_answers_in_the_order_asked_and_raises_the_first_failure(capsys):
    import threading
    import time as _time

    from lab_helpers.connect.batch import at_once

    running, most = [0], [0]
    lock = threading.Lock()

    def call(i: int):
        def run() -> int:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            _time.sleep(0.02 * (5 - i % 5))  # later calls finish first
            with lock:
                running[0] -= 1
            return i * i
        return run

    assert at_once([call(i) for i in range(10)], workers=3, desc="calls", unit="call") == \
        [i * i for i in range(10)]
    assert most[0] == 3, "three at a time, no more"
    assert "10/10" in capsys.readouterr().err  # the bar counted every call

    def broken() -> int:
        raise ValueError("no answer")

    with pytest.raises(ValueError, match="no answer"):
        at_once([call(1), broken, call(2)], workers=2, desc="calls", unit="call",
                progress=False)
