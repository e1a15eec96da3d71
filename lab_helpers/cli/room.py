"""`vllm-lab room ...`: one instructor's server for a room, a key per attendee.

    vllm-lab room up --attendees 12 [--profile cpu|gpu] [--expose] [--allow-benchmarks]
    vllm-lab room add NAME | room revoke NAME | room status | room down
    vllm-lab room benchmarks on|off      (allowed or not, on the running server)
    vllm-lab room export --k8s [--profile gpu] [--replicas N]   (docs/ROOM-KUBERNETES.md)

The room's server is the lab's chat server (`--server` for another); attendee keys live in
its room file (lab_helpers.server.room), which its launcher reads again at every change.
"""

from __future__ import annotations

import argparse
import socket

from ..server.room_guard import ATTENDEE_IN_FLIGHT

ROOM_SERVER = "chat"


def advertised_host(bind_host: str) -> str:
    """The address attendees use: this machine's outward address when the server listens on
    every interface, else the address it listens on."""
    if bind_host not in ("0.0.0.0", "::"):
        return bind_host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # picks the outward interface; sends nothing
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()


def _base_url(server_name: str) -> str:
    from .. import server

    info = server.get(server_name).info
    return f"http://{advertised_host(info.host)}:{info.port}"


def _print_sheet(server_name: str) -> None:
    from ..server.room import JOINS_DIR, allow_benchmarks, join_lines, write_join_sheet

    base_url = _base_url(server_name)
    csv_path, html_path = write_join_sheet(server_name, base_url)
    for row in join_lines(server_name, base_url):
        print(f"{row['name']:<16} {row['url']:<32} {row['key']}")
    print(f"join sheet: {csv_path} and {html_path} (printable; 0600: they hold the keys)")
    print(f"join files: {csv_path.parent / JOINS_DIR}/NAME.json, one per attendee. An attendee "
          "joins with `./.venv/bin/vllm-lab join NAME.json`, or runs `vllm-lab join` and "
          "pastes their line above")
    print("benchmarks against this server: " + (
        "allowed" if allow_benchmarks(server_name) else
        "not allowed (an attendee's module 5 benchmarks a server of their own instead, "
        f"and the server runs at most {ATTENDEE_IN_FLIGHT} requests at once per attendee; "
        "`vllm-lab room benchmarks on` allows them without a restart)"))


def _cmd_up(args: argparse.Namespace) -> int:
    from .. import server
    from ..bench.room import room_capacity
    from ..errors import LabError
    from ..server.config import chat_server
    from ..server.lab_settings import lab_profile
    from ..server.room import ensure_attendees, set_allow_benchmarks
    from ..server.room_settings import LEAVE_FIX, joined_room

    joined = joined_room()
    if joined is not None:  # `chat` here is the other room's server: nothing of ours to serve
        raise LabError(f"This lab has joined the room at {joined.url} as {joined.attendee!r}, "
                       "so it cannot serve a room of its own.",
                       fix=f"leave that room first: {LEAVE_FIX}")
    overrides: dict[str, object] = {"host": "0.0.0.0", "expose": True} if args.expose else {}
    if args.expose:
        print("warning: --expose listens on every interface: anyone who can reach this "
              "machine can reach the server (each request still needs a key)")
    srv = server.start(chat_server(args.profile or lab_profile(), **overrides),
                       runtime=args.runtime)
    print(srv)
    ensure_attendees(srv.name, args.attendees)
    set_allow_benchmarks(srv.name, args.allow_benchmarks)
    _print_sheet(srv.name)
    capacity = room_capacity(server=(srv.model_name, srv.info.port))
    print(capacity.describe(args.attendees) if capacity else
          f"Capacity: no benchmark of this server ({srv.model_name} on port {srv.info.port}) "
          "saved yet. Run module 5's section 2 against it (or bench.run_benchmark with "
          "concurrent users) to see how many attendees one server holds.")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    from ..server.room import add_attendee

    add_attendee(args.server, args.name)
    _print_sheet(args.server)
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    from ..server.room import revoke_attendee

    revoke_attendee(args.server, args.name)
    print(f"revoked {args.name}: their next request is refused (401), and an answer still "
          "streaming to them stops")
    _print_sheet(args.server)
    return 0


def _cmd_benchmarks(args: argparse.Namespace) -> int:
    from ..server.room import set_allow_benchmarks, write_join_sheet

    base_url = _base_url(args.server)  # first: a room not running changes nothing (its error)
    set_allow_benchmarks(args.server, args.state == "on")
    write_join_sheet(args.server, base_url)
    print(f"benchmarks against {args.server}: " + (
        "allowed; the server's limit of requests at once per attendee is lifted now" if
        args.state == "on" else f"not allowed; the server runs at most {ATTENDEE_IN_FLIGHT} "
        "requests at once per attendee from now on") + ". The join files are written again: "
        "attendees who join again with theirs get the new setting in their lab too.")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..metrics.room import ACTIVE_WITHIN_S, AttendeeUsage, RoomMonitor
    from ..server.room import attendees

    names = sorted(attendees(args.server))
    sample = RoomMonitor(args.server).sample()  # one GET /metrics: attendees and load
    usage = sample.usage
    kv = "?" if sample.kv_cache_usage_pct is None else f"{sample.kv_cache_usage_pct:.0f}%"
    print(f"server {args.server}: {sample.requests_running:.0f} requests running, "
          f"{sample.requests_waiting:.0f} waiting, KV cache {kv} used")
    print(f"{'ATTENDEE':<16} {'NOW':<11} {'REQUESTS':>9} {'PROMPT TOK':>11} {'OUTPUT TOK':>11}")
    for name in sorted(set(names) | set(usage)):
        used = usage.get(name, AttendeeUsage())
        note = "" if name in names else "  (revoked)"
        print(f"{name:<16} {used.activity(sample.time):<11} {used.requests:>9} "
              f"{used.prompt_tokens:>11} {used.completion_tokens:>11}{note}")
    active = sum(1 for name in names if usage.get(name, AttendeeUsage()).activity(sample.time)
                 not in ("idle", "never"))  # of the attendees holding a key now
    print(f"{active} of {len(names)} attendees active (a request within "
          f"{ACTIVE_WITHIN_S / 60:.0f} min or one running)")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from .. import server
    from ..server.room import clear_room

    stopped = server.stop(args.server)
    clear_room(args.server)
    print(f"{'stopped' if stopped else 'no running'} server {args.server}; room keys and join "
          "sheet removed")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ..errors import LabError
    from ..server.config import chat_server
    from ..server.lab_settings import lab_profile
    from ..server.room_kube import export_room

    try:
        config = chat_server(args.profile or lab_profile(), name=args.server)
    except ValueError as exc:  # a server name the lab cannot use
        raise LabError(str(exc), fix="vllm-lab room export --k8s --server chat") from exc
    print(export_room(config, replicas=args.replicas, out=args.out).describe())
    return 0


def add_room_commands(sub: argparse._SubParsersAction) -> None:
    room = sub.add_parser("room", help="one server for a room: a key per attendee")
    room_sub = room.add_subparsers(dest="room_command", required=True)
    p = room_sub.add_parser("up", help="start (or reuse) the room's server with N attendee keys")
    p.add_argument("--attendees", type=int, default=0, metavar="N")
    p.add_argument("--profile", choices=["cpu", "gpu"], help="default: the lab's profile")
    p.add_argument("--runtime", choices=["auto", "podman", "local"], default="auto")
    p.add_argument("--expose", action="store_true",
                   help="listen on every interface (0.0.0.0): attendees on other machines")
    p.add_argument("--allow-benchmarks", action="store_true",
                   help="let attendees benchmark this server (module 5); off by default, "
                        "since a benchmark slows everyone's answers: without it the server "
                        f"runs at most {ATTENDEE_IN_FLIGHT} requests at once per attendee")
    p.set_defaults(func=_cmd_up)
    p = room_sub.add_parser("benchmarks", help="allow attendees to benchmark the running "
                            "room's server, or not (no restart)")
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("--server", default=ROOM_SERVER)
    p.set_defaults(func=_cmd_benchmarks)
    for verb, func, text in (("add", _cmd_add, "a key for one more attendee"),
                             ("revoke", _cmd_revoke, "refuse an attendee's key from now on")):
        p = room_sub.add_parser(verb, help=text)
        p.add_argument("name")
        p.add_argument("--server", default=ROOM_SERVER)
        p.set_defaults(func=func)
    p = room_sub.add_parser("export", help="the room's server as Kubernetes manifests "
                            "(lab_helpers.server.room_kube; docs/ROOM-KUBERNETES.md)")
    p.add_argument("--k8s", action="store_true", required=True,
                   help="Kubernetes: Secrets, a Deployment with probes and a Service")
    p.add_argument("--server", default=ROOM_SERVER)
    p.add_argument("--profile", choices=["cpu", "gpu"], help="default: the lab's profile")
    p.add_argument("--replicas", type=int, default=1, metavar="N")
    p.add_argument("--out", help="folder for the files (default: <lab home>/servers/NAME.k8s)")
    p.set_defaults(func=_cmd_export)
    for verb, func, text in (("status", _cmd_status, "attendees, their requests and tokens, "
                              "the server's load"),
                             ("down", _cmd_down, "stop the room's server, remove its keys")):
        p = room_sub.add_parser(verb, help=text)
        p.add_argument("--server", default=ROOM_SERVER)
        p.set_defaults(func=func)
