"""Checks that run before a server starts (or replaces another): model, GPU, memory, ports.

Each failure is a LabError that names the cause and the fix; none of them touches a running
server, so `start()` runs them all before it removes the server it replaces.
"""

from __future__ import annotations

import socket

import psutil

from ..errors import InsufficientMemory, ModelNotFound
from . import gpu
from .config import ServerConfig


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def mem_available_bytes() -> int:
    """Memory available for new processes without swapping (the kernel's MemAvailable)."""
    return int(psutil.virtual_memory().available)


# Three Python processes (API server, engine core, worker) with torch loaded, measured ~1.5 GiB.
PROCESS_OVERHEAD_BYTES = 2 * 1024**3


def memory_needed(config: ServerConfig) -> int:
    """Rough floor of RAM a CPU server needs: weights + KV cache + process overhead."""
    weights = 0
    if config.model_path and config.model_path.is_dir():
        weights = sum(p.stat().st_size for p in config.model_path.glob("*.safetensors"))
    return weights + config.kv_cache_gib * 1024**3 + PROCESS_OVERHEAD_BYTES


def preflight(config: ServerConfig, *, freed_bytes: int = 0) -> None:
    """Checks that need no runtime: model, GPU, memory. Each failure says how to fix it.

    `freed_bytes`: memory a server this start replaces will give back.
    """
    if config.is_local_model:
        path = config.model_path
        assert path is not None
        if not path.is_dir():
            raise ModelNotFound(
                f"Model directory {path} does not exist.",
                cause="the path is wrong, or the bundled models are not prepared yet",
                fix="vllm-lab prepare-models  (then use lab_helpers.server.config.chat_server())",
            )
        if not (path / "config.json").exists():
            raise ModelNotFound(
                f"{path} is not a Hugging Face model directory (no config.json).",
                fix="point ServerConfig.model at a directory with config.json and weights, "
                "or run `vllm-lab prepare-models --force` to rebuild the bundled ones",
            )
    elif config.offline:
        raise ModelNotFound(
            f"Unknown model {config.model!r}: not a local directory, and this server is offline.",
            cause="hub model ids only work on a host with internet (the gpu profile)",
            fix="use a bundled model (`vllm-lab prepare-models`; chat_server('cpu')), a local "
            "directory, or ServerConfig(..., offline=False) on a host with internet",
        )
    if config.device == "gpu":
        gpu.require_gpu()
    else:
        need, have = memory_needed(config), mem_available_bytes() + freed_bytes
        if have and need > have:
            raise InsufficientMemory(
                f"Not enough free memory: the server needs about {need / 1024**3:.1f} GiB "
                f"(KV cache {config.kv_cache_gib} GiB + weights + processes), "
                f"{have / 1024**3:.1f} GiB is available.",
                cause="kv_cache_gib is too large, or other servers use the memory",
                fix="lower kv_cache_gib (e.g. config.replace(kv_cache_gib=1)) or stop other "
                "servers: vllm-lab down --all",
            )
