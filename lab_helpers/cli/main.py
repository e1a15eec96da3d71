"""`vllm-lab`: the lab from a terminal, for instructors and for the setup script."""

from __future__ import annotations

import argparse
import sys

from ..errors import LabError
from .join import add_join_command, joined_line
from .room import add_room_commands


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import format_report, ready, run_checks

    checks = run_checks()
    print(format_report(checks))
    return 0 if ready(checks) else 1


def _cmd_prepare_models(args: argparse.Namespace) -> int:
    from ..models import prepare_models

    for key, path in prepare_models(force=args.force).items():
        print(f"{key}: {path}")
    return 0


def _cmd_build_image(args: argparse.Namespace) -> int:
    from ..server.image import build_image

    print(build_image(compiler=args.compiler, force=args.force))
    return 0


def _cmd_podman_ok(args: argparse.Namespace) -> int:
    from ..server.podman_cli import podman_status

    ok, reason = podman_status()
    print(reason, file=sys.stderr)
    return 0 if ok else 1


def _configs(args: argparse.Namespace):
    from ..server.config import chat_server, embedding_server

    overrides: dict[str, object] = {} if args.port is None else {"port": args.port}
    if args.eager is not None:
        overrides["enforce_eager"] = args.eager
        if not args.eager and args.profile == "cpu":
            from ..server.image import image_for

            overrides["image"] = image_for(compiler=True)
    if args.expose:
        overrides.update(host="0.0.0.0", expose=True)
    configs = [] if args.embed_only else [chat_server(args.profile, **overrides)]
    if args.embed or args.embed_only:
        configs.append(embedding_server(args.profile))
    return configs


def _cmd_up(args: argparse.Namespace) -> int:
    from .. import server
    from ..server.image import build_image, image_for
    from ..server.podman_cli import podman_status
    from ..server.shell_text import multiline_command

    for config in _configs(args):
        if (not args.dry_run and config.image == image_for(compiler=True)
                and args.runtime != "local" and podman_status()[0]):
            # setup builds only the default image: build the g++ variant now (or find it
            # current in a second), its output streaming, so `--compile` runs in Podman.
            build_image(compiler=True)
        runtime = server.get_runtime(args.runtime, config)
        print(f"# {config.name} ({runtime.kind}):\n"
              f"{multiline_command(runtime.preview(config))}\n")
        if args.dry_run:
            continue
        # One progress line on a terminal; a log file (the warm start's) gets none.
        srv = runtime.start(config, on_log=(print if args.verbose else None),
                            progress=sys.stderr.isatty())
        print(srv)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from .. import server

    if args.stale:
        removed = server.cleanup_stale()
        print("removed stale: " + (", ".join(removed) or "none"))
        return 0
    if args.all:
        stopped = server.stop_all()
    else:
        stopped = [name for name in args.names if server.stop(name)]
    print("stopped: " + (", ".join(stopped) or "none"))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .. import server

    infos = server.list_servers()
    joined = joined_line()
    if joined:
        print(joined)
    if not infos:
        print("no lab servers")
        return 0
    print(f"{'NAME':<12} {'RUNTIME':<8} {'STATE':<9} {'HEALTH':<7} {'URL':<24} MODEL")
    for i in infos:
        health = "ok" if i.state == "running" and server.check_health(i.base_url) else "-"
        print(f"{i.name:<12} {i.runtime:<8} {i.state:<9} {health:<7} {i.base_url:<24} "
              f"{i.model_name}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from .. import server

    srv = server.get(args.name)
    if args.follow:
        try:
            for line in srv.follow_logs(tail=args.tail):
                print(line, flush=True)
        except KeyboardInterrupt:
            pass
    else:
        print(srv.logs(tail=args.tail))
    return 0


def _cmd_workspace(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..paths import shipped_notebooks_dir, workspace_dir
    from .start import make_workspace, reset_notebook

    source = Path(args.source) if args.source else shipped_notebooks_dir()
    dest = Path(args.dir) if args.dir else workspace_dir()
    if args.reset:
        fresh, backup = reset_notebook(source, dest, args.reset)
        print(f"{fresh.name}: back as shipped" +
              (f"; your version is kept as {backup.name}" if backup else ""))
        return 0
    for made in make_workspace(source, dest):
        print(f"copied {made.name} into {dest}")
    return 0


def _cmd_warm(args: argparse.Namespace) -> int:
    from ..server.lab_settings import lab_profile
    from .start import warm_start

    joined = joined_line()
    if joined:
        print(f"{joined}: nothing to start (module 1 connects to the room's server)")
        return 0
    print(warm_start(args.profile or lab_profile()).message)
    return 0


def _cmd_settings(args: argparse.Namespace) -> int:
    """`vllm-lab settings [--profile P] [--runtime R] [--model M]`, and `vllm-lab profile [P]`:
    save what is given (all checked first), then print the three settings."""
    from ..server.lab_settings import lab_settings, save_settings

    given = {key: getattr(args, key, None) for key in ("profile", "runtime", "model")}
    if any(value is not None for value in given.values()):
        path = save_settings(**given)
        saved = ", ".join(f"{key} {value}" for key, value in given.items() if value is not None)
        print(f"{saved} saved in {path}: every module uses it from its next run")
    print(lab_settings())
    print(joined_line() or "room: none (this lab runs its own servers; `vllm-lab join` joins "
                           "a room)")
    return 0


def _cmd_mcp_serve(args: argparse.Namespace) -> int:
    from ..mcp.acme_server import serve

    serve(args.transport, host=args.host, port=args.port, token_file=args.token_file,
          db_path=args.db)
    return 0


def _cmd_mcp_install(args: argparse.Namespace) -> int:
    from ..mcp.servers import install_conformance_suite, install_filesystem_server

    print(install_filesystem_server(force=args.force))
    print(install_conformance_suite(force=args.force))   # the tests' MCP conformance suite
    return 0


def _add_mcp_commands(sub: argparse._SubParsersAction) -> None:
    """`vllm-lab mcp serve|install` (module 4)."""
    mcp = sub.add_parser("mcp", help="module 4: the ACME MCP server and the reference servers")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", required=True)
    p = mcp_sub.add_parser(  # no abbreviations: `--token SECRET` must not pass as --token-file
        "serve", help="serve ACME's support desk over MCP", allow_abbrev=False,
        description="Serve ACME's support desk over MCP. stdio needs no token (the client "
                    "starts the server). Over HTTP every request needs 'Authorization: Bearer "
                    "<token>', loopback included; the token is read from a file (created 0600 "
                    "if missing) and never printed: only the file's path is.")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument("--host", default="127.0.0.1",
                   help="HTTP only (default 127.0.0.1; 0.0.0.0 listens on every interface)")
    p.add_argument("--port", type=int, help="HTTP only (default: the lab's port base + 31)")
    p.add_argument("--token-file", metavar="FILE",
                   help="HTTP only: the file holding the bearer token every client must send "
                        "(default: <lab home>/servers/mcp-acme.token, created if missing)")
    p.add_argument("--db", help="the ACME SQLite file (default: the lab home's)")
    p.set_defaults(func=_cmd_mcp_serve)
    p = mcp_sub.add_parser("install", help="install the npm filesystem reference server "
                                          "and the MCP conformance suite (pinned)")
    p.add_argument("--force", action="store_true", help="reinstall even if present")
    p.set_defaults(func=_cmd_mcp_install)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("doctor", help="what is ready, and the fix for what is not").set_defaults(
        func=_cmd_doctor)
    p = sub.add_parser("prepare-models", help="build the bundled models into the cache")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_prepare_models)
    p = sub.add_parser("build-image", help="build the vLLM CPU container image")
    p.add_argument("--compiler", action="store_true",
                   help="add g++ so torch.compile works (slower start, faster decoding)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_build_image)
    sub.add_parser("podman-ok", help="exit 0 if Podman can run containers").set_defaults(
        func=_cmd_podman_ok)

    p = sub.add_parser("up", help="start (or reuse) the chat server, optionally the embeddings one")
    p.add_argument("--profile", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--runtime", choices=["auto", "podman", "local"], default="auto")
    p.add_argument("--port", type=int)
    p.add_argument("--embed", action="store_true", help="also start the embeddings server")
    p.add_argument("--embed-only", action="store_true")
    p.add_argument("--compile", dest="eager", action="store_false", default=None,
                   help="use torch.compile (needs the -compile image or a local compiler)")
    p.add_argument("--expose", action="store_true",
                   help="listen on every interface (0.0.0.0), not only 127.0.0.1: other "
                   "machines can reach the server, protected by its API key")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("-v", "--verbose", action="store_true", help="print the log while starting")
    p.set_defaults(func=_cmd_up)

    p = sub.add_parser("down", help="stop lab servers")
    p.add_argument("names", nargs="*")
    p.add_argument("--all", action="store_true")
    p.add_argument("--stale", action="store_true", help="only those a killed session left")
    p.set_defaults(func=_cmd_down)

    sub.add_parser("status", help="every lab server, both runtimes").set_defaults(
        func=_cmd_status)
    p = sub.add_parser("logs", help="a server's log")
    p.add_argument("name", nargs="?", default="chat")
    p.add_argument("--tail", type=int, default=100)
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(func=_cmd_logs)
    p = sub.add_parser("workspace", help="the learner's working copies of the notebooks "
                                         "(made once, never overwritten)")
    p.add_argument("--source", help="the shipped notebooks (default: the repo's notebooks/)")
    p.add_argument("--dir", help="the working copies' folder (default: VLLM_LAB_WORKSPACE or "
                                 "my-notebooks/ beside notebooks/)")
    p.add_argument("--reset", metavar="MODULE",
                   help="put one module (e.g. 01) back as shipped; yours is kept as a backup")
    p.set_defaults(func=_cmd_workspace)
    p = sub.add_parser("warm", help="start the default chat server in the background, unless "
                                    "one is there (./lab start does this)")
    p.add_argument("--profile", choices=["cpu", "gpu"], help="default: the lab's profile")
    p.set_defaults(func=_cmd_warm)
    p = sub.add_parser("settings", help="the profile, runtime and chat model every module "
                                        "uses: print them, or set any of them")
    p.add_argument("--profile", choices=["cpu", "gpu"])
    p.add_argument("--runtime", choices=["auto", "podman", "local"],
                   help="auto: Podman where it works, else a local process")
    p.add_argument("--model", help="a model of the lab's catalog (module 1, section 2), or "
                                   "'default': the profile's own")
    p.set_defaults(func=_cmd_settings)
    p = sub.add_parser("profile", help="the profile every module uses (cpu or gpu): print the "
                                       "settings, or set the profile")
    p.add_argument("profile", nargs="?", choices=["cpu", "gpu"])
    p.set_defaults(func=_cmd_settings)
    _add_mcp_commands(sub)
    add_room_commands(sub)
    add_join_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
