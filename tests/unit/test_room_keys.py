"""Room mode in the launcher: attendee keys from the room file, added and revoked while the
server runs, counted per attendee name (never the key) on the server's /metrics.

The middleware is the real `KeyGuard` around a small ASGI app that answers like vLLM does
(JSON with `usage`, or server-sent events ending with a usage event). The real server path is
tested in tests/integration/test_room.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time

import prometheus_client
import pytest

from lab_helpers.metrics.room import attendee_usage
from lab_helpers.server import room, room_guard
from lab_helpers.server.keyguard import KEY_FILE_ENV, ROOM_KEYS_ENV, KeyGuard
from lab_helpers.server.room_guard import usage_of

ANSWER = {"choices": [{"message": {"content": "hi"}}],
          "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


async def vllm_like(scope, receive, send):
    stream = scope["path"] == "/v1/completions"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if stream:
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'data: {"choices": [{"text": "h"}], "usage": null}\n\n'})
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'data: {"choices": [], "usage": {"prompt_tokens": 5, '
                            b'"completion_tokens": 3}}\n\n'})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
    else:
        await send({"type": "http.response.body", "body": json.dumps(ANSWER).encode()})


def call(guard: KeyGuard, key: str | None, path: str = "/v1/chat/completions") -> int:
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(guard({"type": "http", "path": path, "headers": headers}, receive, send))
    return sent[0]["status"]


def sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def room_env(lab_home, monkeypatch, tmp_path) -> None:
    """A launcher's environment: the server's key file and the room "roomtest"'s keys file."""
    key_file = tmp_path / "server.key"
    key_file.write_text("instructor-key")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    monkeypatch.setenv(ROOM_KEYS_ENV, str(room.keys_path("roomtest")))


@pytest.fixture
def guard(room_env):
    return KeyGuard(vllm_like)


def test_an_attendee_key_works_from_the_next_request_and_stops_when_revoked(guard):
    assert call(guard, "instructor-key") == 200
    alice = room.add_attendee("roomtest", "alice")
    assert call(guard, alice) == 200
    bob = room.add_attendee("roomtest", "bob")
    assert call(guard, bob) == 200 and call(guard, alice) == 200
    room.revoke_attendee("roomtest", "alice")
    assert call(guard, alice) == 401
    assert call(guard, bob) == 200
    assert call(guard, "room-made-up") == 401 and call(guard, None) == 401
    assert call(guard, "instructor-key") == 200  # the server's own key is unaffected


def test_requests_and_tokens_are_counted_per_attendee_name(guard):
    carol = room.add_attendee("roomtest", "carol")
    before = (sample("lab_room_requests_total", attendee="carol"),
              sample("lab_room_tokens_total", attendee="carol", kind="prompt"),
              sample("lab_room_tokens_total", attendee="carol", kind="completion"))
    assert call(guard, carol) == 200                              # JSON answer with usage
    assert call(guard, carol, "/v1/completions") == 200           # streamed, usage at the end
    assert call(guard, carol, "/v1/models") == 200                # no usage: a request only
    after = (sample("lab_room_requests_total", attendee="carol"),
             sample("lab_room_tokens_total", attendee="carol", kind="prompt"),
             sample("lab_room_tokens_total", attendee="carol", kind="completion"))
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 11 + 5, 7 + 3]
    exposed = prometheus_client.generate_latest().decode()
    assert 'attendee="carol"' in exposed and carol not in exposed
    # who is active: nothing of carol's runs now, and her last request was just now
    assert sample("lab_room_requests_running", attendee="carol") == 0
    assert time.time() - sample("lab_room_last_request_timestamp_seconds",
                                attendee="carol") < 60
    read = attendee_usage(exposed)["carol"]  # what room status and the dashboard read
    assert (read.requests, read.prompt_tokens, read.running) == (after[0], after[1], 0)
    assert read.activity() == "active" and read.activity(now=time.time() + 3600) == "idle"
    # the instructor's own requests are not an attendee's
    assert call(guard, "instructor-key") == 200
    assert sample("lab_room_requests_total", attendee="carol") == after[0]


def test_the_room_file_is_private_and_replaced_whole(lab_home):
    room.add_attendee("roomtest2", "dave")
    path = room.keys_path("roomtest2")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert set(room.attendees("roomtest2")) == {"dave"}
    room.clear_room("roomtest2")
    assert room.attendees("roomtest2") == {}


@pytest.mark.parametrize("name", ["", "a b", "../x", "-dash", "x" * 41, 'q"uote'])
def test_bad_attendee_names_are_refused_with_the_rule(lab_home, name):
    with pytest.raises(room.RoomError, match="letters, digits"):
        room.add_attendee("roomtest3", name)


def test_revoking_an_unknown_attendee_says_how_to_list_them(lab_home):
    with pytest.raises(room.RoomError, match="vllm-lab room status"):
        room.revoke_attendee("roomtest4", "nobody")


def test_a_broken_room_file_admits_no_attendee_and_says_what_to_do(guard, capsys):
    path = room.keys_path("roomtest")
    path.write_text("{not json")
    assert call(guard, "anything") == 401
    assert "room keys not read" in capsys.readouterr().err
    with pytest.raises(room.RoomError, match="rm "):
        room.attendees("roomtest")
    assert call(guard, "instructor-key") == 200


def test_usage_is_read_from_json_and_from_the_last_streamed_event():
    assert usage_of(json.dumps(ANSWER).encode()) == ANSWER["usage"]
    events = (b'data: {"usage": null}\n\ndata: {"usage": {"prompt_tokens": 2}}\n\n'
              b"data: [DONE]\n\n")
    assert usage_of(events) == {"prompt_tokens": 2}
    assert usage_of(b'{"data": [1, 2]}') is None
    assert usage_of(b'{"usage": {"prompt_tok') is None  # cut short: nothing, no error


ROOM_METRICS_TEXT = (
    b"# HELP lab_room_requests_total Requests per room attendee\n"
    b"# TYPE lab_room_requests_total counter\n"
    b'lab_room_requests_total{attendee="alice"} 3.0\n'
    b'lab_room_requests_total{attendee="alicia"} 9.0\n'
    b'lab_room_requests_created{attendee="bob"} 1.7e9\n'
    b'lab_room_tokens_total{attendee="bob",kind="prompt"} 40.0\n'
    b'lab_room_requests_running{attendee="bob"} 1.0\n'
    b'lab_room_last_request_timestamp_seconds{attendee="bob"} 1.7e9\n'
    b'vllm:num_requests_running{model_name="m"} 1.0\n'
)


async def metrics_app(scope, receive, send):
    """/metrics like vLLM's: gzip when the client accepts it, plain text otherwise."""
    import gzip

    gz = any(k == b"accept-encoding" and b"gzip" in v for k, v in scope["headers"])
    body = gzip.compress(ROOM_METRICS_TEXT) if gz else ROOM_METRICS_TEXT
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200,
                "headers": headers + ([(b"content-encoding", b"gzip")] if gz else [])})
    await send({"type": "http.response.body", "body": body})


def read_metrics(guard: KeyGuard, key: str, path: str = "/metrics") -> tuple[dict, bytes]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    headers = [(b"authorization", f"Bearer {key}".encode()), (b"accept-encoding", b"gzip")]
    asyncio.run(guard({"type": "http", "path": path, "headers": headers}, receive, send))
    return sent[0], b"".join(m.get("body", b"") for m in sent[1:])


def test_an_attendee_reads_metrics_without_the_other_attendees(room_env):
    guard = KeyGuard(metrics_app)
    alice = room.add_attendee("roomtest", "alice")
    # vLLM answers every path that starts with /metrics with the metrics page
    for path in ("/metrics", "/metrics/", "//metrics", "/metricsX", "/metrics.txt"):
        start, body = read_metrics(guard, alice, path)
        assert start["status"] == 200 and b"alice" in body
        assert b"alicia" not in body and b"bob" not in body  # neither names nor figures
        assert b"vllm:num_requests_running" in body and b"# HELP lab_room" in body
        assert dict(start["headers"])[b"content-length"] == str(len(body)).encode()
    start, body = read_metrics(guard, "instructor-key")  # the instructor sees the whole room
    assert dict(start["headers"]).get(b"content-encoding") == b"gzip"
    import gzip

    assert gzip.decompress(body) == ROOM_METRICS_TEXT


class HeldStream:
    """An ASGI app that streams like vLLM and holds each answer after its first event until
    `release` is set: requests stay running for as long as a test needs."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def __call__(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'data: {"choices": [{"delta": {"content": "h"}}]}\n\n'})
        self.started += 1
        await self.release.wait()
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'data: {"choices": [{"delta": {"content": "i"}}]}\n\n'})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


async def open_requests(guard: KeyGuard, key: str, count: int, app: HeldStream,
                        after_started=None, body: bytes = b"") -> list[list[dict]]:
    """`count` requests at once, held by the app; `after_started` runs while they are held."""
    answers: list[list[dict]] = [[] for _ in range(count)]

    async def one(i: int) -> None:
        async def send(message):
            answers[i].append(message)

        sent_body = False

        async def receive():  # the body, then a client that stays
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        await guard({"type": "http", "path": "/v1/chat/completions",
                     "headers": [(b"authorization", f"Bearer {key}".encode())]},
                    receive, send)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    for _ in range(200):  # until every admitted request is held (or answered)
        await asyncio.sleep(0.01)
        if all(t.done() or answers[i] for i, t in enumerate(tasks)) and \
                app.started >= sum(1 for a in answers if a and a[0]["status"] == 200):
            break
    if after_started:
        after_started()
    app.release.set()
    await asyncio.gather(*tasks)
    return answers


def test_an_attendee_runs_a_limited_number_of_requests_at_once_unless_benchmarks_are_allowed(
        room_env):
    erin = room.add_attendee("roomtest", "erin")
    over = room_guard.ATTENDEE_IN_FLIGHT + 3

    app = HeldStream()
    running: list[float] = []  # what /metrics says while the admitted requests are held
    answers = asyncio.run(open_requests(KeyGuard(app), erin, over, app, after_started=lambda:
                                        running.append(sample("lab_room_requests_running",
                                                              attendee="erin"))))
    assert running == [room_guard.ATTENDEE_IN_FLIGHT]
    assert sample("lab_room_requests_running", attendee="erin") == 0
    statuses = sorted(a[0]["status"] for a in answers)
    assert statuses == [200] * room_guard.ATTENDEE_IN_FLIGHT + [429] * 3
    refused = next(a for a in answers if a[0]["status"] == 429)
    message = json.loads(refused[1]["body"])["error"]["message"]
    assert "vllm-lab room benchmarks on" in message
    assert str(room_guard.ATTENDEE_IN_FLIGHT) in message
    # the limit counts running requests: once they finish, the attendee sends again
    assert call(KeyGuard(vllm_like), erin) == 200

    room.set_allow_benchmarks("roomtest", True)  # read by the running launcher, no restart
    app = HeldStream()
    answers = asyncio.run(open_requests(KeyGuard(app), erin, over, app))
    assert [a[0]["status"] for a in answers] == [200] * over


@pytest.mark.parametrize(("path", "request_body", "count"), [
    ("/v1/chat/completions", {"messages": [], "n": 3}, 3),
    ("/v1/chat/completions", {"messages": [], "n": True}, 1),
    ("/v1/completions", {"prompt": ["a", "b", "c"], "n": 2}, 6),
    ("/v1/completions", {"prompt": [1, 2, 3]}, 1),              # token ids: one prompt
    ("/v1/completions", {"prompt": [[1, 2], [3]]}, 2),
    ("/v1/embeddings", {"input": ["a", "b"]}, 2),
    ("/v1/chat/completions", "not json", 1),
])
def test_a_request_counts_as_the_sequences_it_asks_for(path, request_body, count):
    raw = request_body.encode() if isinstance(request_body, str) else \
        json.dumps(request_body).encode()
    assert room_guard.sequences(path, raw) == count


def test_one_request_cannot_carry_more_than_an_attendees_limit(room_env):
    """`n` answers or a list of prompts in one request count as that many against the limit."""
    frank = room.add_attendee("roomtest", "frank")
    limit = room_guard.ATTENDEE_IN_FLIGHT
    too_big = json.dumps({"model": "m", "messages": [], "n": limit + 1}).encode()
    app = HeldStream()
    [answer] = asyncio.run(open_requests(KeyGuard(app), frank, 1, app, body=too_big))
    assert answer[0]["status"] == 429 and app.started == 0
    message = json.loads(answer[1]["body"])["error"]["message"]
    assert f"asks for {limit + 1} answers" in message and "smaller n" in message
    # half the limit each: two fit, the third would exceed it
    half = json.dumps({"model": "m", "messages": [], "n": limit // 2}).encode()
    app = HeldStream()
    answers = asyncio.run(open_requests(KeyGuard(app), frank, 3, app, body=half))
    assert sorted(a[0]["status"] for a in answers) == [200, 200, 429]
    # the body still reaches the app whole after the guard read it
    seen: list[bytes] = []

    async def echo(scope, receive, send):
        seen.append((await receive())["body"])
        await vllm_like(scope, receive, send)

    async def run_one():
        sent: list[dict] = []
        chunks = [{"type": "http.request", "body": half[:5], "more_body": True},
                  {"type": "http.request", "body": half[5:], "more_body": False}]

        async def receive():
            return chunks.pop(0)

        async def send(message):
            sent.append(message)

        await KeyGuard(echo)({"type": "http", "path": "/v1/chat/completions",
                              "headers": [(b"authorization", f"Bearer {frank}".encode())]},
                             receive, send)
        return sent[0]["status"]

    assert asyncio.run(run_one()) == 200 and seen == [half]


class TokenStream:
    """A streamed answer as vLLM serves it: Starlette's StreamingResponse over a generator
    that makes a token every 10 ms (TOKENS in all, then [DONE]) unless it is told to stop
    first (vLLM aborts the request when its generator is cancelled or closed). Records whose
    answers were stopped."""

    TOKENS = 100

    def __init__(self) -> None:
        self.stopped: list[str] = []

    async def __call__(self, scope, receive, send):
        from starlette.responses import StreamingResponse

        async def tokens():
            try:
                for _ in range(self.TOKENS):
                    await asyncio.sleep(0.01)
                    yield 'data: {"choices": [{"delta": {"content": "h"}}]}\n\n'
                yield "data: [DONE]\n\n"
            except (asyncio.CancelledError, GeneratorExit):
                self.stopped.append(scope["who"])
                raise

        await StreamingResponse(tokens(), media_type="text/event-stream")(scope, receive, send)


def test_a_key_revoked_mid_answer_gets_no_more_of_it(room_env):
    keys = {"grace": room.add_attendee("roomtest", "grace"),
            "frank": room.add_attendee("roomtest", "frank")}
    app = TokenStream()
    guard = KeyGuard(app)
    sent: dict[str, list[dict]] = {"grace": [], "frank": []}
    stopped_when_frank_returned: list[str] = []

    async def one(who: str) -> None:
        async def client_that_stays():
            return {"type": "http.request", "body": b"{}", "more_body": False} \
                if not sent[who] else await asyncio.sleep(3600)

        async def send(message):
            sent[who].append(message)
            if who == "frank" and len(sent[who]) == 3:  # begun: the instructor revokes frank
                room.revoke_attendee("roomtest", "frank")

        # as uvicorn serves vLLM (ASGI 2.3: Starlette listens for the client's disconnect)
        scope = {"type": "http", "path": "/v1/chat/completions", "who": who,
                 "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "headers": [(b"authorization", f"Bearer {keys[who]}".encode())]}
        await guard(scope, client_that_stays, send)
        if who == "frank":  # right when the guard returns, before any clean-up
            stopped_when_frank_returned.extend(app.stopped)

    async def both():
        await asyncio.wait_for(asyncio.gather(one("frank"), one("grace")), 10)

    runner = threading.Thread(target=lambda: asyncio.run(both()), daemon=True)
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "the guard did not return within 30 s of a revoked answer"
    cut = b"".join(m.get("body", b"") for m in sent["frank"][1:])
    assert cut.count(b'"content": "h"') >= 2 and b"[DONE]" not in cut
    assert b"revoked" in cut.split(b"\n\n")[-2], "the revoked event ends the cut answer"
    assert not sent["frank"][-1].get("more_body", False), "the stream is ended for the client"
    kept = b"".join(m.get("body", b"") for m in sent["grace"][1:])
    assert kept.count(b'"content": "h"') == TokenStream.TOKENS and b"[DONE]" in kept
    assert stopped_when_frank_returned == ["frank"], "the cut answer's generation stops at once"
    assert app.stopped == ["frank"], "the other attendee's answer went on"



def test_an_attendee_key_reaches_only_what_the_modules_use(guard):
    """The rest of vLLM's routes would escape the limits and the counts (or abort other
    people's requests): 403 for an attendee, as they are for the instructor's own."""
    henry = room.add_attendee("roomtest", "henry")
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
                 "/tokenize"):
        assert call(guard, henry, path) == 200, path
    for path in ("/v1/responses", "/invocations", "/pooling", "/inference/v1/generate",
                 "/v1/chat/completions/batch", "/inference/v1/abort_requests", "/v1/messages",
                 "//v1/chat/completions", "/v1/chat/completions/"):
        assert call(guard, henry, path) == 403, path
        assert call(guard, "instructor-key", path) == 200, path
    closed: list[dict] = []

    async def send(message):
        closed.append(message)

    async def receive():
        return {"type": "websocket.connect"}

    asyncio.run(guard({"type": "websocket", "path": "/v1/realtime",
                       "headers": [(b"authorization", f"Bearer {henry}".encode())]},
                      receive, send))
    assert closed == [{"type": "websocket.close", "code": 1008}]


def test_a_nameless_entry_in_the_room_file_is_an_attendee_not_the_instructor(guard):
    """The instructor is recognised by the server's key alone, never by a name."""
    room.add_attendee("roomtest", "ivy")
    path = room.keys_path("roomtest")
    data = json.loads(path.read_text())
    data["attendees"][""] = "room-nameless"
    path.write_text(json.dumps(data))
    assert call(guard, "room-nameless", "/v1/models") == 200  # an attendee ...
    assert call(guard, "room-nameless", "/pooling") == 403    # ... with an attendee's limits


def test_the_labs_own_batches_fit_an_attendees_limit_as_the_readme_says():
    """The README's limit is the launcher's, and no module's batch (their default number of
    requests at once, or what a notebook passes instead) runs into it in a joined lab."""
    import inspect
    import re
    from pathlib import Path

    from lab_helpers.mcp.agent import McpAgent
    from lab_helpers.structured.experiment import run_ticket_experiment
    from lab_helpers.tools.evaluate import evaluate
    from lab_helpers.tools.loop import ToolLoop

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    said = re.search(r"at most (\d+) requests at once per attendee", readme.replace("\n  ", " "))
    assert said and int(said.group(1)) == room_guard.ATTENDEE_IN_FLIGHT
    batches = {"evaluate": inspect.signature(evaluate).parameters["workers"].default,
               "run_many": inspect.signature(ToolLoop.run_many).parameters["workers"].default,
               "ask_many": inspect.signature(McpAgent.ask_many).parameters["workers"].default,
               "run_ticket_experiment":
                   inspect.signature(run_ticket_experiment).parameters["concurrency"].default}
    # ... and what the notebooks pass to them
    for notebook in sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb")):
        for n, cell in enumerate(json.loads(notebook.read_text())["cells"]):
            for size in re.findall(r"\b(?:concurrency|workers)=(\d+)", "".join(cell["source"])):
                batches[f"{notebook.stem} cell {n}"] = int(size)
    assert max(batches.values()) <= room_guard.ATTENDEE_IN_FLIGHT, batches
    batch_said = re.search(r"the lab's own batches send at most (\d+)", readme.replace("\n  ", " "))
    assert batch_said and int(batch_said.group(1)) == max(batches.values())
