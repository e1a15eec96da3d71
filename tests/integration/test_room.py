"""Room mode on a real server, both runtimes: 30 attendees with their own keys chat at once;
one is revoked mid-run and refused from then on while the others go on; the server's /metrics
counts each attendee's requests and tokens exactly as they sent them, under their names; no
attendee key leaks into a log, an inspect, an export, a command line or an environment.

The room is the shared chat server's (no extra start): its launcher reads the room file
whenever it changes.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest

from lab_helpers.metrics import fetch_metrics
from lab_helpers.metrics.room import room_usage
from lab_helpers.server import room, room_guard
from lab_helpers.server.kube import kube_setup_commands, kube_yaml
from lab_helpers.server.podman_cli import run_podman
from lab_helpers.widgets.room_dashboard import RoomDashboard

pytestmark = pytest.mark.integration

ATTENDEES = 30
RUN_S = 12.0
REVOKE_AT_S = 5.0


@pytest.fixture(params=["podman", "local"])
def room_server(request):
    srv = request.getfixturevalue("chat_srv" if request.param == "podman" else "local_chat_srv")
    if srv.runtime.kind != request.param:
        pytest.skip(f"the shared chat server is not in {request.param} here")
    yield srv
    room.clear_room(srv.name)


def chat(base_url: str, key: str, client: httpx.Client,
         model: str = "smollm2-135m-instruct") -> httpx.Response:
    return client.post(f"{base_url}/v1/chat/completions", timeout=120,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"model": model, "max_tokens": 6,
                             "temperature": 0,
                             "messages": [{"role": "user", "content": "Say hi."}]})


def test_thirty_attendees_one_revoked_mid_run(room_server):
    srv = room_server
    tag = secrets.token_hex(3)  # names of this run only: the counters live as long as the server
    names = [f"t{tag}-{n:02d}" for n in range(1, ATTENDEES + 1)]
    keys = {name: room.add_attendee(srv.name, name) for name in names}
    revoked = names[6]
    sent: Counter[str] = Counter()
    tokens: dict[str, list[int]] = {name: [0, 0] for name in names}
    errors: list[str] = []
    refused_after_revoke = threading.Event()
    revoked_at: list[float] = []
    answered_at: dict[str, float] = {}  # each attendee's last answer
    start = time.monotonic()

    def attendee(name: str) -> None:
        with httpx.Client() as client:
            while time.monotonic() - start < RUN_S:
                answer = chat(srv.base_url, keys[name], client, srv.model_name)
                if answer.status_code == 200:
                    usage = answer.json()["usage"]
                    answered_at[name] = time.monotonic()
                    sent[name] += 1
                    tokens[name][0] += usage["prompt_tokens"]
                    tokens[name][1] += usage["completion_tokens"]
                elif answer.status_code == 401 and name == revoked and revoked_at:
                    refused_after_revoke.set()
                    return  # a revoked attendee is out
                else:
                    errors.append(f"{name}: HTTP {answer.status_code} {answer.text[:200]}")
                    return

    threads = [threading.Thread(target=attendee, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    time.sleep(REVOKE_AT_S)
    mid_run = room_usage(srv)  # who is active now: requests running, a recent last request
    room.revoke_attendee(srv.name, revoked)
    revoked_at.append(time.monotonic())
    for thread in threads:
        thread.join(timeout=RUN_S + 180)
    assert errors == []
    assert refused_after_revoke.is_set(), "the revoked key was never refused"
    others = [n for n in names if n != revoked]
    assert all(sent[n] > 0 for n in others), "every other attendee got answers"
    # after the revocation the others went on: each got answers after it
    late = [n for n in others if answered_at.get(n, 0) <= revoked_at[0]]
    assert late == [], f"no answer after the revocation for {late}"

    ours = {n: u for n, u in mid_run.items() if n in keys}  # (earlier runs' names are idle)
    assert sum(u.running for u in ours.values()) >= 1, ours
    assert ours and all(u.activity() in ("active", "1 running") for u in ours.values()), ours
    usage = room_usage(srv)
    assert sum(usage[n].running for n in names) == 0, "none running after the run"
    assert all((usage[n].last_request or 0) >= (u.last_request or 0) > 0
               for n, u in ours.items())
    for name in names:
        got = usage[name]
        assert (got.requests, got.prompt_tokens, got.completion_tokens) == \
            (sent[name], *tokens[name]), name
    with httpx.Client() as client:  # the revoked key stays refused, the others work
        assert chat(srv.base_url, keys[revoked], client, srv.model_name).status_code == 401
        assert chat(srv.base_url, keys[names[0]], client, srv.model_name).status_code == 200
        # An attendee reads the server's figures (module 1's live metrics need them) but not
        # the other attendees' names or counts: those are the instructor's.
        seen = client.get(f"{srv.base_url}/metrics", timeout=30,
                          headers={"Authorization": f"Bearer {keys[names[1]]}"})
        assert seen.status_code == 200 and "vllm:num_requests_running" in seen.text
        assert f'attendee="{names[1]}"' in seen.text
        assert not [n for n in names if n != names[1] and f'"{n}"' in seen.text]

    # No attendee key outside the room file and the join sheet.
    shown = [srv.logs(tail=100000)]
    for proc in psutil.process_iter():
        try:
            shown.append(" ".join(proc.cmdline()))
            shown.append(repr(proc.environ()))
        except psutil.Error:
            continue
    if srv.runtime.kind == "podman":
        assert srv.config is not None
        shown.append(run_podman("inspect", srv.config.container_name).stdout)
        shown.append(kube_yaml(srv.name))
        shown.append(kube_setup_commands(srv.name))
    leaked = [name for name, key in keys.items() if any(key in text for text in shown)]
    assert leaked == []
    board = RoomDashboard(srv, auto=False)  # the instructor's view of the same counts
    assert f"<td>{revoked}</td><td>revoked</td>" in board.table_html
    # (names[0] sent one more request above, after the run)
    assert f"<td>{names[0]}</td><td>active</td><td>{sent[names[0]] + 1}</td>" in board.table_html
    assert f"<b>{ATTENDEES - 1}</b> attendees" in board.summary
    assert board.plot_png.startswith(b"\x89PNG")  # requests, tokens and load over time
    board.close()
    sheet = room.write_join_sheet(srv.name, srv.base_url)
    assert all(keys[n] in Path(sheet[0]).read_text() for n in others)
    assert keys[revoked] not in Path(sheet[0]).read_text()


def vllm_lab(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "lab_helpers.cli", *args], text=True,
                          capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout



def open_stream(client: httpx.Client, base_url: str, key: str, model: str,
                max_tokens: int = 400, **extra):
    """A streamed chat request left open (the caller reads it and closes it)."""
    request = client.build_request(
        "POST", f"{base_url}/v1/chat/completions", timeout=120,
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "max_tokens": max_tokens, "temperature": 0, "stream": True,
              "messages": [{"role": "user", "content": "Write a long story about a ship."}],
              **extra})
    return client.send(request, stream=True)


def generating(srv) -> bool:
    """Whether the engine still works on a request (its own gauge, read with the server's key)."""
    return fetch_metrics(srv).model(srv.model_name).requests_running > 0


def test_the_room_limits_an_attendee_and_cuts_a_revoked_stream(room_server):
    """What the server itself enforces, not only the attendee's lab: requests at once per
    attendee (unless benchmarks are allowed), and a key revoked mid-answer gets no more of it."""
    srv = room_server
    tag = secrets.token_hex(3)
    heavy, cut = f"h{tag}", f"c{tag}"
    keys = {name: room.add_attendee(srv.name, name) for name in (heavy, cut)}
    room.set_allow_benchmarks(srv.name, False)
    with httpx.Client() as client:
        streams = [open_stream(client, srv.base_url, keys[heavy], srv.model_name)
                   for _ in range(room_guard.ATTENDEE_IN_FLIGHT + 1)]
        try:
            statuses = sorted(s.status_code for s in streams)
            refused = next(s for s in streams if s.status_code == 429)
            assert "vllm-lab room benchmarks on" in refused.read().decode()
        finally:
            for stream in streams:
                stream.close()
        assert statuses == [200] * room_guard.ATTENDEE_IN_FLIGHT + [429]

        # An answer that would run for minutes unless cut (no end of text: vLLM's ignore_eos).
        stream = open_stream(client, srv.base_url, keys[cut], srv.model_name,
                             max_tokens=4000, ignore_eos=True)
        try:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            first = next(line for line in lines if line.startswith("data: "))
            assert '"delta"' in first
            room.revoke_attendee(srv.name, cut)
            rest = list(lines)
        finally:
            stream.close()
    events = [line for line in rest if line.startswith("data: ")]
    assert "revoked" in events[-1] and "data: [DONE]" not in events
    # ... and the engine stops working on it (nothing else runs on the server now).
    deadline = time.monotonic() + 10
    while generating(srv) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not generating(srv), "the revoked answer is still being generated"
    # the server goes on answering its other callers
    with httpx.Client() as client:
        assert chat(srv.base_url, srv.api_key, client, srv.model_name).status_code == 200


def test_the_room_commands_an_instructor_types(chat_srv):
    """`room up` reuses the running server, writes the join sheet and says what one server
    holds; `status` counts an attendee's request; `revoke` takes a name off the sheet."""
    try:
        up = vllm_lab("room", "up", "--attendees", "3")
        assert "reused" in up.lower() or chat_srv.base_url in up
        sheet = room.room_dir(chat_srv.name) / "join.csv"
        assert oct(sheet.stat().st_mode & 0o777) == "0o600"
        keys = room.attendees(chat_srv.name)
        assert sorted(keys) == ["attendee-01", "attendee-02", "attendee-03"]
        assert all(key in up for key in keys.values())  # printed for the instructor
        assert "attendees need" in up or "no benchmark of this server" in up.lower() or \
            "would not help" in up
        with httpx.Client() as client:
            assert chat(chat_srv.base_url, keys["attendee-01"], client,
                        chat_srv.model_name).status_code == 200
        status = vllm_lab("room", "status")
        row = next(line for line in status.splitlines() if line.startswith("attendee-01"))
        assert row.split()[1:3] == ["active", "1"]
        never = next(line for line in status.splitlines() if line.startswith("attendee-02"))
        assert never.split()[1:3] == ["never", "0"]
        assert "requests running" in status and "1 of 3 attendees active" in status
        # benchmarks allowed on the running room: the server reads it, the join files say it
        assert "allowed" in vllm_lab("room", "benchmarks", "on")
        assert room.allow_benchmarks(chat_srv.name)
        join_file = room.room_dir(chat_srv.name) / room.JOINS_DIR / "attendee-01.json"
        assert json.loads(join_file.read_text())["allow_benchmarks"] is True
        assert chat_srv.health(), "the room's server was not restarted"
        vllm_lab("room", "benchmarks", "off")
        assert not room.allow_benchmarks(chat_srv.name)
        vllm_lab("room", "revoke", "attendee-02")
        assert "attendee-02" not in sheet.read_text()
        assert "attendee-02" not in room.attendees(chat_srv.name)
    finally:
        room.clear_room(chat_srv.name)
