"""The room this lab has joined, as the lab's settings record it (the attendee's side).

`vllm-lab join` records the room in the lab's one settings file (`settings.json`, beside the
profile, runtime and model: lab_settings.py) and the attendee's key in its own file,
`<lab home>/room.key` (0600):

    {"profile": "cpu",
     "room": {"url": "http://10.0.0.5:8000", "attendee": "alice", "server": "chat",
              "model": "smollm2-135m-instruct", "allow_benchmarks": false}}

While a room is joined, the lab server named `server` ("chat": the one modules 1-5 start) is
the room's: `server.start(chat_server(...))` connects to it instead of starting one, and its
key is the attendee's (`read_api_key("chat")` reads room.key). Every other server (the
embeddings one, a tuned variant, the MCP servers) stays on the attendee's machine.

This module only reads and writes that state; contacting the room is room_join.py's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import LabError
from ..paths import lab_home, replace_file
from .lab_settings import read_settings, write_settings

ROOM_SERVER = "chat"
KEY_NAME = "room.key"
LEAVE_FIX = "./.venv/bin/vllm-lab join --leave"


@dataclass(frozen=True)
class JoinedRoom:
    """A joined room: where its server is, who this attendee is, what the instructor allows."""

    url: str
    """The server's base URL, without /v1 (e.g. http://10.0.0.5:8000)."""
    attendee: str
    server: str = ROOM_SERVER
    """The lab's name for the room's server on this machine."""
    model: str = ""
    """The model the room served when this lab joined."""
    allow_benchmarks: bool = False
    """The instructor allowed benchmarks against the room's server (`room up
    --allow-benchmarks`): a benchmark slows every attendee's answers."""

    @property
    def key_file(self) -> Path:
        return room_key_file()

    def describe(self) -> str:
        bench = "allowed" if self.allow_benchmarks else "not allowed"
        return (f"room server {self.url} as {self.attendee!r} (the lab's {self.server!r} "
                f"server; benchmarks against it {bench})")


def base_url_of(url: str) -> str:
    """`http://host:port` from a room URL as the join sheet gives it (with or without /v1)."""
    text = url.strip().rstrip("/").removesuffix("/v1").rstrip("/")
    parts = urlsplit(text)
    ok = parts.scheme in ("http", "https") and parts.hostname and parts.path in ("", "/")
    try:
        ok = ok and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:
        ok = False
    if not ok:
        raise LabError(f"{url!r} is not a room's URL.",
                       cause="a room URL is the base URL on the join sheet, like "
                             "http://10.0.0.5:8000/v1",
                       fix="copy it from your line of the join sheet: "
                           "./.venv/bin/vllm-lab join --url http://HOST:PORT/v1")
    return text


def room_key_file() -> Path:
    return lab_home() / KEY_NAME


def joined_room() -> JoinedRoom | None:
    """The room this lab has joined (None: the lab runs its own servers)."""
    found = read_settings().get("room")
    if not found:
        return None
    try:
        room = JoinedRoom(**found)
        base_url_of(room.url)
    except (TypeError, LabError) as exc:
        raise LabError("The lab's settings name a room that cannot be read.", cause=str(exc),
                       fix=f"leave it and join again: {LEAVE_FIX}") from exc
    return room


def room_key(server_name: str) -> str | None:
    """The attendee's key when `server_name` is the joined room's server; else None."""
    room = joined_room()
    if room is None or room.server != server_name:
        return None
    path = room_key_file()
    return path.read_text().strip() if path.exists() else ""


def save_join(room: JoinedRoom, key: str) -> Path:
    """Record the room (in settings.json) and the key (room.key, 0600); the settings path."""
    key = check_key(key)
    replace_file(room_key_file(), key + "\n")
    settings = read_settings()
    settings["room"] = asdict(room)
    return write_settings(settings)


def check_key(key: str) -> str:
    key = key.strip()
    if not key or any(ch.isspace() for ch in key):
        raise LabError("The room key is empty or has spaces in it.",
                       cause="a key is one word, like room-AbC...; it was copied cut or joined "
                             "to the next field",
                       fix="copy the key alone from your line of the join sheet and join again")
    return key


def forget_room() -> JoinedRoom | None:
    """Leave the room: its entry and the key file are removed; the room that was joined
    (None if none, or if its entry could not be read)."""
    try:
        room = joined_room()
    except LabError:
        room = None
    settings = read_settings()
    if "room" in settings:
        del settings["room"]
        write_settings(settings)
    room_key_file().unlink(missing_ok=True)
    return room


def is_room_server(server_name: str) -> bool:
    room = joined_room()
    return room is not None and room.server == server_name


def same_server(url_a: str, url_b: str) -> bool:
    """Do two base URLs name the same server (scheme, host, port; /v1 or not)?"""
    def key(url: str) -> tuple[str, str, int]:
        parts = urlsplit(url.strip().rstrip("/").removesuffix("/v1"))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, (parts.hostname or "").lower(), port

    try:
        return key(url_a) == key(url_b)
    except ValueError:
        return False


def benchmark_refusal(base_url: str) -> LabError | None:
    """Why a benchmark of `base_url` must not run (it is the joined room's server and the
    instructor did not allow benchmarks), or None."""
    room = joined_room()
    if room is None or room.allow_benchmarks or not same_server(base_url, room.url):
        return None
    return LabError(
        f"Not benchmarking {room.url}: it is the room's server, shared by every attendee.",
        cause="a benchmark sends as many requests as the server can take, so everyone else's "
              "answers would slow down while it runs; the instructor has not allowed "
              "benchmarks in this room",
        fix="benchmark a server of your own instead (module 5's start cell starts one when it "
            "finds the room's): srv = server.start(chat_server(PROFILE, name=\"my-chat\")), "
            "then bench.Target.from_server(srv); or leave "
            f"the room ({LEAVE_FIX}). The instructor can allow benchmarks: vllm-lab room "
            "benchmarks on (then join again with your new join file).")


def unreachable_fix(room: JoinedRoom) -> str:
    return (f"ask the instructor whether the room's server is up (they start it with "
            f"`vllm-lab room up --expose`) and check that this machine reaches {room.url}; "
            f"to work on a server of your own instead: {LEAVE_FIX}")


def key_refused_fix(room: JoinedRoom) -> str:
    return (f"ask the instructor for a new key (they run `vllm-lab room add {room.attendee}`), "
            "then join again with your new line or file: ./.venv/bin/vllm-lab join FILE")
