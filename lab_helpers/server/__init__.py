"""Start, reuse, inspect and stop vLLM servers, in Podman or as local processes.

    from lab_helpers.server.config import chat_server
    from lab_helpers import server

    cfg = chat_server("cpu")
    print(server.preview(cfg))          # the exact command, before anything runs
    print(server.preview(cfg, multiline=True))   # the same, one argument a line
    srv = server.start(cfg)             # ~30 s cold, ~1 s when a matching server is healthy
    srv.client().chat.completions.create(model=srv.model_name, messages=[...])

Servers outlive the notebook kernel on purpose: module 2 reuses the server module 1 started.
`vllm-lab down --all` (or `server.stop_all()`) stops them; a `with server.start(cfg) as srv:`
block stops its server on exit.

What the package holds: the configuration (`config`: ServerConfig and the profiles; `profiles`: the
lab's one switch between them; `catalog`: the models the lab knows), a running server (`handle`:
ServerInfo and the Server handle), the lifecycle (`base`, `checks`, `keys`, `keyguard`, `local`,
`podman`, `gpu`), what a running server reports (`settings_table`), and what packages it for
elsewhere (`image` with `base_image`, `pip_settings` and `podman_cli`; `kube`).
May import: `models`, `errors`, `paths` (never the clients built on it: chat, tools, bench).
"""

from __future__ import annotations

import os
from typing import Literal

from ..errors import ServerNotFound
from .base import Runtime, available_runtimes, free_port, port_is_free
from .config import COMPILE_IMAGE, ServerConfig
from .handle import Server, ServerInfo, check_health
from .local import LocalRuntime
from .podman import PodmanRuntime
from .podman_cli import image_exists, podman_status
from .shell_text import multiline_command

RuntimeKind = Literal["auto", "podman", "local"]

__all__ = [
    "Runtime", "Server", "ServerInfo", "LocalRuntime", "PodmanRuntime", "get_runtime",
    "choose_runtime", "start", "preview", "get", "stop", "stop_all", "list_servers",
    "cleanup_stale", "check_health", "free_port", "port_is_free", "available_runtimes",
]


def choose_runtime(config: ServerConfig | None = None) -> tuple[str, str]:
    """(kind, why). Podman wherever it works and the image is there; else a local process.

    VLLM_LAB_RUNTIME=podman|local overrides the choice.
    """
    forced = os.environ.get("VLLM_LAB_RUNTIME", "").strip().lower()
    if forced in ("podman", "local"):
        return forced, f"VLLM_LAB_RUNTIME={forced}"
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
    if kind == "podman":
        return PodmanRuntime()
    if kind == "local":
        return LocalRuntime()
    raise ValueError(f"Unknown runtime {kind!r}: choose 'auto', 'podman' or 'local'")


def preview(config: ServerConfig, runtime: RuntimeKind = "auto", *,
            multiline: bool = False) -> str:
    """The exact command as shell text, without the key. One line by default (for code that
    searches it); `multiline=True` puts each argument on its own line, for reading."""
    text = get_runtime(runtime, config).preview(config)
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
            return Server(rt, info)
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
            rt.remove(info.name)
            stopped.append(info.name)
    return stopped


def cleanup_stale() -> list[str]:
    """Remove servers a killed session left behind (exited, or unreachable without a key)."""
    return [name for rt in available_runtimes() for name in rt.cleanup_stale()]
