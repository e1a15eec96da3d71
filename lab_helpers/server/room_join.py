"""Joining a room (the attendee's side): the room's server as this lab's chat server.

    vllm-lab join alice.json          # the join file the instructor handed out
    vllm-lab join                     # or paste your line of the join sheet (name, URL, key)
    vllm-lab join --url http://10.0.0.5:8000/v1 --key-file key.txt
    vllm-lab join --leave

Joining checks the room first (its /health, then the key with GET /v1/models) and records
it (room_settings.py). From then on `server.start(chat_server(PROFILE))` returns the room's
server through `RoomRuntime`, a runtime that starts nothing: it checks that the room answers
and takes the key, says that this is the room's server, and stops nothing either (stopping
it here only disconnects this lab). Everything else a module starts, and every tool, MCP
server and approval, stays on the attendee's machine.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..errors import LabError, ServerNotFound
from .base import Runtime
from .config import ServerConfig
from .handle import Server, ServerInfo, check_health
from .room import attendees, check_name
from .room_settings import (
    LEAVE_FIX,
    JoinedRoom,
    base_url_of,
    check_key,
    joined_room,
    key_refused_fix,
    room_key,
    room_key_file,
    save_join,
    unreachable_fix,
)

TIMEOUT_S = 5.0
JOIN_FIX = ("./.venv/bin/vllm-lab join FILE   (your join file), or run `vllm-lab join` and "
            "paste your line of the join sheet: name, URL, key")


class RoomUnavailable(ServerNotFound):
    """The joined room's server does not answer."""


class RoomKeyRefused(LabError):
    """The joined room's server refuses the attendee's key (revoked, or copied wrong)."""


@dataclass(frozen=True)
class JoinLine:
    """What an attendee needs to join: their name, the room's URL and key, the policy."""

    attendee: str
    url: str
    key: str
    allow_benchmarks: bool = False

    def __repr__(self) -> str:  # the key never shows
        return (f"JoinLine({self.attendee!r}, {self.url!r}, "
                f"allow_benchmarks={self.allow_benchmarks})")


@dataclass(frozen=True)
class RoomServerInfo(ServerInfo):
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


# -- reading a join file or line ---------------------------------------------------------------


def _allowed(value: object) -> bool:
    """The join sheet's benchmarks field: yes/no (a join file: true/false)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("yes", "no", ""):
        raise _unreadable(f"its benchmarks field {value!r} is not yes or no")
    return text == "yes"


def parse_join_text(text: str, name: str | None = None) -> JoinLine:
    """A join file's text (JSON from `room up`, or the join sheet's CSV) or one pasted line
    (`name URL key`, spaces or commas). `name` picks a row of a sheet with several."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
            return JoinLine(check_name(str(data["name"])), base_url_of(str(data["url"])),
                            str(data["key"]), _allowed(data.get("allow_benchmarks", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise _unreadable(f"the join file has no {exc}" if isinstance(exc, KeyError)
                              else str(exc)) from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].replace(" ", "").lower().startswith("name,url,key"):
        rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
        picked = [r for r in rows if name is None or r.get("name") == name]
        if len(picked) != 1:
            names = ", ".join(r.get("name", "?") for r in rows)
            raise LabError(
                f"The join sheet has {len(rows)} attendees ({names}): which one are you?"
                if name is None or not picked else f"No attendee {name!r} on the join sheet.",
                fix="name yourself: ./.venv/bin/vllm-lab join SHEET.csv --name YOUR-NAME")
        row = picked[0]
        fields = [row.get("name", ""), row.get("url", ""), row.get("key", ""),
                  row.get("benchmarks", "")]
    elif len(lines) == 1:
        fields = lines[0].replace(",", " ").split()
        if len(fields) not in (3, 4):
            raise _unreadable(f"the line has {len(fields)} fields, not 3 (name, URL, key)")
    else:
        raise _unreadable("it is neither a join file nor one line of the join sheet")
    attendee, url, key, *rest = fields
    return JoinLine(check_name(attendee), base_url_of(url), key,
                    _allowed(rest[0]) if rest else False)


def _unreadable(why: str) -> LabError:
    return LabError(f"This is not a room's join file or line: {why}.", fix=JOIN_FIX)


def read_join_file(path: str | Path, name: str | None = None) -> JoinLine:
    file = Path(path).expanduser()
    if not file.is_file():
        raise LabError(f"No join file at {file}.", fix=JOIN_FIX)
    return parse_join_text(file.read_text(), name)


# -- contacting the room -------------------------------------------------------------------------


def probe(room: JoinedRoom, key: str) -> str:
    """The model the room serves, after /health answers and the key is accepted."""
    if not check_health(room.url, timeout=TIMEOUT_S):
        raise RoomUnavailable(f"The room's server at {room.url} does not answer.",
                              cause="it is not started yet or was stopped, or this machine "
                                    "cannot reach the instructor's (another network, a "
                                    "firewall, a mistyped URL)",
                              fix=unreachable_fix(room))
    try:
        answer = httpx.get(f"{room.url}/v1/models", timeout=TIMEOUT_S * 2,
                           headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        raise RoomUnavailable(f"The room's server at {room.url} stopped answering "
                              f"({type(exc).__name__}).", fix=unreachable_fix(room)) from exc
    if answer.status_code == 401:
        raise RoomKeyRefused(f"The room's server at {room.url} refused the key of "
                             f"{room.attendee!r} (401).",
                             cause="the instructor revoked it or gave you a new one, or it was "
                                   "copied wrong (each attendee has their own key)",
                             fix=key_refused_fix(room))
    if answer.status_code != 200:
        raise RoomUnavailable(f"The room's server at {room.url} answered {answer.status_code} "
                              "to GET /v1/models.", fix=unreachable_fix(room))
    models = [m.get("id", "") for m in answer.json().get("data", [])]
    if not models:
        raise RoomUnavailable(f"The room's server at {room.url} serves no model.",
                              fix=unreachable_fix(room))
    return str(models[0])


def join(line: JoinLine, *, stop_own: Callable[[str], bool] | None = None) -> tuple[JoinedRoom,
                                                                                       list[str]]:
    """Check the room, then record it; (the room, what was done besides). `stop_own` stops
    this lab's own server of the room's name (it would clash with the room's)."""
    room = JoinedRoom(url=line.url, attendee=line.attendee,
                      allow_benchmarks=line.allow_benchmarks)
    if attendees(room.server):
        raise LabError("This lab home hosts a room itself: it cannot join one.",
                       cause=f"its {room.server!r} server has attendee keys (vllm-lab room up)",
                       fix="join from the attendee's lab (their machine, or another "
                           "VLLM_LAB_HOME); or stop hosting first: vllm-lab room down")
    room = replace(room, model=probe(room, check_key(line.key)))
    notes = []
    if stop_own is not None and stop_own(room.server):
        notes.append(f"your own {room.server!r} server was stopped: this lab now uses the "
                     "room's (leave the room to start yours again)")
    save_join(room, line.key)
    return room, notes


# -- the runtime -------------------------------------------------------------------------------


def room_info(room: JoinedRoom, state: str, model: str = "") -> RoomServerInfo:
    parts = urlsplit(room.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return RoomServerInfo(name=room.server, runtime="room", state=state,
                          host=parts.hostname or "", port=port, model_name=model or room.model,
                          config_hash="room", ident=room.url, scheme=parts.scheme)


class RoomServer(Server):
    """The room's server as this lab sees it: the attendee's key, nothing to stop or read."""

    @property
    def key_file(self) -> Path:
        return room_key_file()

    def __repr__(self) -> str:
        room = joined_room()
        who = f", joined as {room.attendee!r}" if room else ""
        return (f"<Server {self.name!r} room {self.base_url} model={self.model_name!r} "
                f"(the room's server{who}; started by the instructor)>")


class RoomRuntime(Runtime, register=True):
    """The joined room's server under the lab's name for it (usable only while joined)."""

    kind = "room"
    usable_first = 0  # `server.get("chat")` finds the room's server before any own one

    @classmethod
    def usable(cls) -> bool:
        return joined_room() is not None

    def _room(self, name: str | None = None) -> JoinedRoom | None:
        room = joined_room()
        return room if room is not None and name in (None, room.server) else None

    def command(self, config: ServerConfig) -> list[str]:
        return []

    def preview(self, config: ServerConfig) -> str:
        room = self._room()
        return f"# the room's server at {room.url if room else '?'}: nothing runs on this machine"

    def check(self, config: ServerConfig) -> None:
        return None

    def _launch(self, config: ServerConfig) -> str:
        raise LabError("A room's server is started by the instructor, never by this lab.")

    def find(self, name: str) -> ServerInfo | None:
        room = self._room(name)
        if room is None:
            return None
        up = check_health(room.url, timeout=TIMEOUT_S)
        return room_info(room, "running" if up else "unreachable")

    def list(self) -> list[ServerInfo]:
        room = self._room()
        found = self.find(room.server) if room else None
        return [found] if found else []

    def _remove(self, name: str, grace: float) -> bool:
        room = self._room(name)
        if room is not None:
            print(f"{name!r} is the room's server ({room.url}): it keeps running for the other "
                  "attendees; only the instructor stops it. To work without it: " + LEAVE_FIX)
        return False

    def logs(self, name: str, tail: int = 100) -> str:
        return ("The room's server runs on the instructor's machine: its log is there "
                "(vllm-lab logs). This lab only connects to it.")

    def follow(self, name: str, tail: int = 20) -> Iterator[str]:
        yield self.logs(name)

    def equivalents(self, name: str) -> dict[str, str]:
        room = self._room(name)
        if room is None:
            return {}
        auth = f'-H "Authorization: Bearer $(cat {room_key_file()})"'
        return {"check that it answers": f"curl -s {room.url}/health",
                "list its models (with your key)": f"curl -s {room.url}/v1/models {auth}",
                "leave the room": LEAVE_FIX}

    def is_stale(self, info: ServerInfo) -> bool:
        return False

    def get(self, name: str) -> Server:
        info = self.find(name)
        if info is None:
            raise ServerNotFound(f"No room server named {name!r}.", fix=JOIN_FIX)
        return RoomServer(self, info)

    def decide(self, config: ServerConfig, *,
               reuse: bool = True) -> tuple[str, ServerInfo | None]:
        info = self.find(config.name)
        return ("reuse" if info is not None and info.state == "running" else "replace"), info

    def start(self, config: ServerConfig, *, reuse: bool = True, timeout: float = 400.0,
              on_log: Callable[[str], None] | None = None, progress: bool = True) -> Server:
        """Connect to the room's server: it answers, takes the key; say that it is the room's."""
        began = time.monotonic()
        room = self._room(config.name)
        if room is None:
            raise LabError(f"{config.name!r} is not the joined room's server.", fix=JOIN_FIX)
        key = room_key(room.server)
        if not key:
            raise RoomKeyRefused(f"The key for the room at {room.url} is missing "
                                 f"({room_key_file()}).", fix=JOIN_FIX)
        model = probe(room, key)
        if model != room.model:
            save_join(replace(room, model=model), key)
        print(f"Connected to the room's server at {room.url} (model {model}) as "
              f"{room.attendee!r}: the instructor runs it, so nothing was started on this "
              f"machine and stopping it here leaves it running. (Leave the room: {LEAVE_FIX})")
        if model != config.model_name:
            print(f"Note: the room serves {model}, not {config.model_name} (your profile's "
                  "model): this module uses the room's.")
        return RoomServer(self, room_info(room, "running", model), config=config, reused=True,
                          startup_seconds=time.monotonic() - began)

    def cleanup_stale(self) -> list[str]:
        return []
