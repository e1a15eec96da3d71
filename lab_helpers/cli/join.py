"""`vllm-lab join ...`: this lab uses a room's server (the attendee's side of room mode).

    vllm-lab join alice.json                      # the join file from the instructor
    vllm-lab join join.csv --name alice           # or the whole join sheet, your row
    vllm-lab join                                 # or paste your line: name URL key
    vllm-lab join --url http://10.0.0.5:8000/v1 --name alice [--key-file key.txt]
    vllm-lab join --leave

The key is read from a file, or typed/pasted at a prompt that does not show it (or piped on
stdin): never from the command line, where `ps` shows it to every user of the machine.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from .. import server
from ..errors import LabError
from ..server.room import check_name
from ..server.room_join import JOIN_FIX, JoinLine, join, parse_join_text, read_join_file
from ..server.room_settings import LEAVE_FIX, base_url_of, forget_room, joined_room


def joined_line() -> str:
    """One line saying which room this lab has joined ("" when none)."""
    room = joined_room()
    return f"room: joined {room.describe()}; leave: {LEAVE_FIX}" if room else ""


def _secret_input(prompt: str) -> str:
    """A line from the terminal without echo, or from stdin when it is not a terminal."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline()


def _join_line(args: argparse.Namespace) -> JoinLine:
    if args.url:
        if args.file:
            raise LabError("Give a join file or --url, not both.", fix=JOIN_FIX)
        url = base_url_of(args.url)
        if args.key_file:
            path = Path(args.key_file).expanduser()
            if not path.is_file():
                raise LabError(f"No key file at {path}.",
                               fix="save your key (from the join sheet) in a file only you can "
                                   "read, or leave out --key-file and paste it when asked")
            key = path.read_text()
        else:
            key = _secret_input("Your room key (from the join sheet; not shown): ")
        return JoinLine(check_name(args.name or "attendee"), url, key.strip())
    if args.file and args.file != "-":
        return read_join_file(args.file, args.name)
    text = _secret_input("Paste your line of the join sheet (name, URL, key; not shown): ") \
        if args.file is None else sys.stdin.read()
    return parse_join_text(text, args.name)


def _stop_own(name: str) -> bool:
    """Stop this lab's own server of the room's name (the room's replaces it here)."""
    return any([rt.remove(name) for rt in server.available_runtimes()
                if rt.kind != "room" and rt.find(name) is not None])


def _cmd_join(args: argparse.Namespace) -> int:
    if args.leave:
        room = forget_room()
        print(f"left the room at {room.url}: module 1's start cell starts your own server again"
              if room else "this lab has not joined a room")
        return 0
    if args.status:
        print(joined_line() or "this lab has not joined a room")
        return 0
    room, notes = join(_join_line(args), stop_own=_stop_own)
    print(f"joined the room at {room.url} as {room.attendee!r} (it serves {room.model}).")
    for note in notes:
        print(note)
    print(f"Your key is kept in {room.key_file} (only you can read it).")
    print("Module 1's start cell (server.start(chat_server(PROFILE))) now connects to the "
          "room's server instead of starting one; modules 2-4 use it the same way. Your tools, "
          "MCP servers and approvals stay on this machine.")
    print("Benchmarks against the room's server: " + (
        "allowed by the instructor." if room.allow_benchmarks else
        "not allowed (a benchmark would slow every attendee's answers): module 5 benchmarks a "
        "server of your own."))
    print(f"Leave the room: {LEAVE_FIX}")
    return 0


def add_join_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "join", help="use a room's server (the instructor's) as this lab's chat server",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    p.add_argument("file", nargs="?", help="your join file (NAME.json) or the join sheet "
                                           "(join.csv, with --name); '-' reads it from stdin")
    p.add_argument("--name", help="your name on the join sheet")
    p.add_argument("--url", help="the room's base URL (then the key comes from --key-file "
                                 "or a prompt)")
    p.add_argument("--key-file", metavar="FILE", help="a file holding your room key")
    p.add_argument("--leave", action="store_true", help="stop using the room's server")
    p.add_argument("--status", action="store_true", help="say which room is joined")
    p.set_defaults(func=_cmd_join)
