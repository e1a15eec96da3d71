"""Start, reuse, inspect and stop vLLM servers, in Podman or as local processes.

    from lab_helpers.server.config import chat_server
    from lab_helpers import server

    cfg = chat_server("cpu")
    print(server.preview(cfg))          # the exact command, before anything runs
    print(server.preview(cfg, multiline=True))   # the same, one argument a line
    srv = server.start(cfg)             # ~20 s cold, ~1 s when a matching server is healthy
    srv.client().chat.completions.create(model=srv.model_name, messages=[...])

Servers outlive the notebook kernel on purpose: module 2 reuses the server module 1 started.
`vllm-lab down --all` (or `server.stop_all()`) stops them; a `with server.start(cfg) as srv:`
block stops its server on exit.

What the package holds: the configuration (`config`: ServerConfig and the profiles;
`lab_settings`: the lab's one switch, profile, runtime and model; `catalog`: the models the lab
knows), a running server (`handle`:
ServerInfo and the Server handle), the lifecycle (`base`, `checks`, `keys`, `keyguard`, `local`,
`podman`, `gpu`), what a running server reports (`settings_table`), and what packages it for
elsewhere (`image` with `base_image`, `pip_settings` and `podman_cli`; `kube`).
May import: `models`, `errors`, `paths` (never the clients built on it: chat, tools, bench).
"""

from __future__ import annotations

from typing import Literal

from ..errors import ServerNameInUse, ServerNotFound
from .base import Runtime, available_runtimes, free_port, port_is_free
from .config import COMPILE_IMAGE, ServerConfig
from .handle import Server, ServerInfo, check_health
from .lab_settings import lab_runtime
from .local import LocalRuntime
from .podman import PodmanRuntime
from .podman_cli import image_exists, podman_status
from .room_join import RoomRuntime, RoomServer, RoomUnavailable
from .room_settings import LEAVE_FIX, joined_room, unreachable_fix
from .shell_text import multiline_command

RuntimeKind = Literal["auto", "podman", "local", "room"]

__all__ = [
    "Runtime", "Server", "ServerInfo", "LocalRuntime", "PodmanRuntime", "get_runtime",
    "choose_runtime", "start", "preview", "get", "stop", "stop_all", "list_servers",
    "cleanup_stale", "check_health", "free_port", "port_is_free", "available_runtimes",
]


def choose_runtime(config: ServerConfig | None = None) -> tuple[str, str]:
    """(kind, why). Podman wherever it works and the image is there; else a local process.

    The lab's runtime setting (`vllm-lab settings --runtime`, or VLLM_LAB_RUNTIME:
    lab_settings.py) overrides the choice. In a lab that has joined a room
    (`vllm-lab join`), the room's server name ("chat") is the room's: kind "room".
    """
    room = joined_room() if config is not None else None
    if room is not None and config is not None and config.name == room.server:
        return "room", f"this lab has joined the room at {room.url} (vllm-lab join)"
    return _own_runtime(config)


def _own_runtime(config: ServerConfig | None) -> tuple[str, str]:
    """choose_runtime for a server this machine runs itself."""
    forced, where = lab_runtime()
    if forced != "auto":
        return forced, (f"{where}={forced}" if where == "VLLM_LAB_RUNTIME"
                        else f"runtime {forced} in the lab's settings ({where})")
    ok, reason = podman_status()
    if not ok:
        return "local", f"Podman is not usable ({reason})"
    if config is not None and config.device == "cpu" and not image_exists(config.image):
        build = "build-image --compiler" if config.image == COMPILE_IMAGE else "build-image"
        return "local", f"image {config.image} is not built (vllm-lab {build})"
    return "podman", reason


def get_runtime(kind: RuntimeKind = "auto", config: ServerConfig | None = None) -> Runtime:
    if kind == "auto":
        kind = choose_runtime(config)[0]  # type: ignore[assignment]
    elif config is not None and kind != "room":
        _refuse_own_room_name(config, kind)
    if kind == "room":
        return RoomRuntime()
    if kind == "podman":
        return PodmanRuntime()
    if kind == "local":
        return LocalRuntime()
    raise ValueError(f"Unknown runtime {kind!r}: choose 'auto', 'podman' or 'local'")


def _refuse_own_room_name(config: ServerConfig, kind: str) -> None:
    room = joined_room()
    if room is not None and config.name == room.server:
        raise ServerNameInUse(
            f"In this lab {config.name!r} is the room's server ({room.url}): a {kind} server of "
            "that name would clash with it.",
            cause="this lab has joined a room (vllm-lab join)",
            fix=f"give yours another name: config.replace(name=\"my-{config.name}\", "
                f"port=server.free_port()); or leave the room first: {LEAVE_FIX}")


def preview(config: ServerConfig, runtime: RuntimeKind = "auto", *,
            multiline: bool = False) -> str:
    """The exact command as shell text, without the key. One line by default (for code that
    searches it); `multiline=True` puts each argument on its own line, for reading."""
    # In a joined room, the command this config means here (the room's runs elsewhere).
    kind = _own_runtime(config)[0] if runtime in ("auto", "room") else runtime
    text = get_runtime(kind, None).preview(config)  # type: ignore[arg-type]
    return multiline_command(text) if multiline else text


def start(config: ServerConfig, runtime: RuntimeKind = "auto", **kwargs: object) -> Server:
    """Start (or reuse) a server; see Runtime.start for the keyword arguments."""
    return get_runtime(runtime, config).start(config, **kwargs)  # type: ignore[arg-type]


def list_servers() -> list[ServerInfo]:
    return [info for rt in available_runtimes() for info in rt.list()]


def get(name: str) -> Server:
    """The running lab server called `name`, whichever runtime holds it."""
    for rt in available_runtimes():
        info = rt.find(name)
        if info is not None and info.state == "running":
            return RoomServer(rt, info) if isinstance(rt, RoomRuntime) else Server(rt, info)
    room = joined_room()
    if room is not None and room.server == name:
        raise RoomUnavailable(f"The room's server at {room.url} does not answer.",
                              cause="it is not started yet or was stopped, or this machine "
                                    "cannot reach it",
                              fix=unreachable_fix(room))
    raise ServerNotFound(
        f"No running lab server named {name!r}.",
        cause="it was never started, was stopped, or its machine restarted",
        fix="start it: vllm-lab up   (or server.start(chat_server()) in a notebook)",
    )


def stop(name: str) -> bool:
    return any([rt.remove(name) for rt in available_runtimes()])


def stop_all() -> list[str]:
    stopped = []
    for rt in available_runtimes():
        for info in rt.list():
            if rt.remove(info.name):  # the room's server is never stopped from here
                stopped.append(info.name)
    return stopped


def cleanup_stale() -> list[str]:
    """Remove servers a killed session left behind (exited, or unreachable without a key)."""
    return [name for rt in available_runtimes() for name in rt.cleanup_stale()]
