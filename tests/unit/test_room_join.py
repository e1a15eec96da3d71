"""Joining a room, the attendee's side, without a server: reading what the instructor hands
out (join file, sheet, a pasted line), what joining records (0600, beside the profile), what a
joined lab does with the name "chat", and the refusals with their fix (a room that does not
answer, a benchmark of the room's server, an own server under the room's name).

The real room server (start, chat, a revoked key, module 5's guard) is tested in
tests/integration/test_room_join.py.
"""

from __future__ import annotations

import io
import json
import socket
import stat
import sys

import httpx
import pytest

from lab_helpers import bench, server
from lab_helpers.cli import main
from lab_helpers.cli.main import build_parser
from lab_helpers.connect import KeyRejected, translate
from lab_helpers.errors import LabError, ServerNameInUse
from lab_helpers.server import room
from lab_helpers.server.config import ServerConfig
from lab_helpers.server.keys import read_api_key
from lab_helpers.server.lab_settings import lab_profile, save_settings, settings_path
from lab_helpers.server.room_join import RoomUnavailable, join, parse_join_text, read_join_file
from lab_helpers.server.room_settings import (
    JoinedRoom,
    benchmark_refusal,
    forget_room,
    joined_room,
    room_key_file,
    save_join,
)

KEY = "room-" + "k" * 32


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mode(path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_what_the_instructor_writes_is_what_the_attendee_reads(lab_home):
    room.add_attendee("chat", "alice")
    room.add_attendee("chat", "bob")
    room.set_allow_benchmarks("chat", True)
    sheet, _html = room.write_join_sheet("chat", "http://10.0.0.5:8000")
    keys = room.attendees("chat")
    joins = room.room_dir("chat") / room.JOINS_DIR
    assert mode(joins) == "0o700" and mode(joins / "alice.json") == "0o600"
    line = read_join_file(joins / "alice.json")
    assert (line.attendee, line.url, line.key, line.allow_benchmarks) == \
        ("alice", "http://10.0.0.5:8000", keys["alice"], True)
    assert keys["alice"] not in repr(line)
    from_sheet = read_join_file(sheet, "bob")
    assert (from_sheet.attendee, from_sheet.key, from_sheet.allow_benchmarks) == \
        ("bob", keys["bob"], True)
    with pytest.raises(LabError, match="which one are you") as info:
        read_join_file(sheet)
    assert "--name" in info.value.fix
    room.revoke_attendee("chat", "bob")
    room.set_allow_benchmarks("chat", False)
    room.write_join_sheet("chat", "http://10.0.0.5:8000")
    assert not (joins / "bob.json").exists()  # a revoked attendee's file goes with the key
    assert read_join_file(joins / "alice.json").allow_benchmarks is False
    room.clear_room("chat")
    assert not list(joins.glob("*.json"))


def test_a_pasted_line_of_the_sheet_is_enough():
    for text in (f"alice  http://10.0.0.5:8000/v1  {KEY}\n", f"alice,http://10.0.0.5:8000/v1,{KEY}"):
        line = parse_join_text(text)
        assert (line.attendee, line.url, line.key, line.allow_benchmarks) == \
            ("alice", "http://10.0.0.5:8000", KEY, False)
    assert parse_join_text(f"alice http://h:1/v1 {KEY} yes").allow_benchmarks is True


@pytest.mark.parametrize("text,expected", [
    ("alice http://10.0.0.5:8000/v1", r"not 3 \(name, URL, key\)"),
    (f"alice 10.0.0.5:8000 {KEY}", "not a room's URL"),
    (f"alice ftp://10.0.0.5:8000/v1 {KEY}", "not a room's URL"),
    (f"al!ce http://10.0.0.5:8000/v1 {KEY}", "not a usable attendee name"),
    (f"alice http://10.0.0.5:8000/v1 {KEY} maybe", "'maybe' is not yes or no"),
    ('{"name": "alice", "url": "http://h:1/v1"}', "no 'key'"),
    ("hello\nworld", "neither a join file nor one line"),
])
def test_what_is_not_a_join_line_says_so(text, expected):
    with pytest.raises(LabError, match=expected) as info:
        parse_join_text(text)
    assert info.value.fix


def test_joining_records_the_room_beside_the_profile(lab_home):
    save_settings(profile="cpu")
    joined = JoinedRoom(url="http://127.0.0.1:9", attendee="alice", model="m")
    save_join(joined, KEY + "\n")
    assert joined_room() == joined and lab_profile() == "cpu"
    assert mode(room_key_file()) == "0o600" and mode(settings_path()) == "0o600"
    assert KEY not in settings_path().read_text()  # the key is in its own file only
    assert read_api_key("chat") == KEY  # the room's server is "chat" here
    assert read_api_key("embed") is None
    save_settings(profile="cpu")  # setting the profile keeps the room
    assert joined_room() == joined
    assert forget_room() == joined
    assert joined_room() is None and not room_key_file().exists()
    assert read_api_key("chat") is None


def test_joining_a_room_that_does_not_answer_records_nothing(lab_home):
    line = parse_join_text(f"alice http://127.0.0.1:{closed_port()}/v1 {KEY}")
    with pytest.raises(RoomUnavailable) as info:
        join(line)
    assert "instructor" in info.value.fix and "join --leave" in info.value.fix
    assert joined_room() is None and not room_key_file().exists()


def test_a_host_lab_cannot_join_a_room(lab_home):
    room.add_attendee("chat", "alice")
    with pytest.raises(LabError, match="hosts a room itself"):
        join(parse_join_text(f"alice http://127.0.0.1:{closed_port()}/v1 {KEY}"))


def test_the_key_never_comes_from_the_command_line(lab_home, capsys, tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        main(["join", "--url", "http://127.0.0.1:9/v1", "--key", KEY])
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    assert main(["join", "--url", url, "--name", "alice", "--key-file", str(key_file)]) == 2
    err = capsys.readouterr().err
    assert "does not answer" in err and KEY not in err
    assert main(["join", "--status"]) == 0
    assert "not joined" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"alice {url} {KEY}\n"))  # a pasted line
    assert main(["join"]) == 2
    err = capsys.readouterr().err
    assert "does not answer" in err and KEY not in err


def test_a_joined_lab_whose_room_is_down(lab_home, capsys, tiny_model_dir):
    url = f"http://127.0.0.1:{closed_port()}"
    save_join(JoinedRoom(url=url, attendee="alice", model="m"), KEY)
    cfg = ServerConfig(model=str(tiny_model_dir), name="chat", enable_tools=True,
                       tool_call_parser="hermes")  # chat_server's shape, without a model
    assert server.choose_runtime(cfg)[0] == "room"
    assert server.choose_runtime(cfg.replace(name="embed"))[0] != "room"
    assert "--enable-auto-tool-choice" in server.preview(cfg)  # the command it stands for
    assert "podman run" in server.preview(cfg, runtime="podman")  # previews start nothing
    with pytest.raises(RoomUnavailable) as info:
        server.start(cfg)
    assert url in info.value.what and "instructor" in info.value.fix
    with pytest.raises(RoomUnavailable):
        server.get("chat")
    with pytest.raises(ServerNameInUse) as clash:
        server.get_runtime("local", cfg)
    assert "my-chat" in clash.value.fix
    capsys.readouterr()
    assert server.stop_all() == []  # never the room's server
    assert "keeps running for the other attendees" in capsys.readouterr().out
    server.stop("chat")
    assert "keeps running for the other attendees" in capsys.readouterr().out
    assert joined_room() is not None
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"joined room server {url} as 'alice'" in out and "unreachable" in out
    assert main(["warm"]) == 0 and "nothing to start" in capsys.readouterr().out
    assert main(["profile"]) == 0 and "room: joined" in capsys.readouterr().out


def test_a_revoked_key_says_ask_the_instructor(lab_home):
    save_join(JoinedRoom(url="http://127.0.0.1:9", attendee="alice"), KEY)
    request = httpx.Request("GET", "http://127.0.0.1:9/v1/models")
    refused = httpx.HTTPStatusError("401", request=request, response=httpx.Response(
        401, request=request, json={"error": "invalid key"}))
    err = translate(refused, label="the lab server 'chat'", server_name="chat")
    assert isinstance(err, KeyRejected)
    assert "room add alice" in err.fix and "join again" in err.fix
    own = translate(refused, label="the lab server 'embed'", server_name="embed")
    assert "vllm-lab down embed" in own.fix  # an own server keeps its own fix


def test_a_joined_lab_cannot_serve_a_room_of_its_own(lab_home, capsys):
    """`room up` there would write a sheet of local keys for the other room's URL."""
    save_join(JoinedRoom(url="http://127.0.0.1:9", attendee="alice"), KEY)
    assert main(["room", "up", "--attendees", "2"]) == 2
    err = capsys.readouterr().err
    assert "joined the room" in err and "join --leave" in err
    assert room.attendees("chat") == {}


def test_module_5_refuses_the_rooms_server_unless_allowed(lab_home):
    url = "http://127.0.0.1:9"
    save_join(JoinedRoom(url=url, attendee="alice"), KEY)
    target = bench.Target(base_url=f"{url}/v1", model="m", tokenizer="/nowhere", api_key=KEY)
    with pytest.raises(bench.BenchError, match="room's server") as info:
        bench.run_benchmark(target, bench.concurrent([1], max_requests=1))
    assert "slow" in info.value.cause and "vllm-lab room benchmarks on" in info.value.fix
    # the instructor's command it names exists (and changes a running room without a restart)
    assert build_parser().parse_args(["room", "benchmarks", "on"]).func.__name__ == \
        "_cmd_benchmarks"
    assert benchmark_refusal("http://localhost:9") is None  # another address: not the room
    assert benchmark_refusal("http://127.0.0.1:10") is None
    save_join(JoinedRoom(url=url, attendee="alice", allow_benchmarks=True), KEY)
    assert benchmark_refusal(url) is None
    with pytest.raises(bench.BenchError, match="Tokenizer directory"):  # past the guard
        bench.run_benchmark(target, bench.concurrent([1], max_requests=1))


def test_a_broken_room_entry_says_how_to_leave(lab_home):
    save_settings(profile="cpu")
    settings = json.loads(settings_path().read_text())
    settings["room"] = {"url": "nonsense"}
    settings_path().write_text(json.dumps(settings))
    with pytest.raises(LabError) as info:
        joined_room()
    assert "join --leave" in info.value.fix
    assert main(["join", "--leave"]) == 0  # the fix works
    assert joined_room() is None and lab_profile() == "cpu"
