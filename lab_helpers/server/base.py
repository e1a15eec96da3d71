"""One server lifecycle for both runtimes: checks, reuse, launch, wait for health, fail fast.

A runtime (Podman or a local process) only knows how to launch, inspect, read logs of and
remove *its* kind of server. Everything a learner relies on — the pre-flight checks with clear
errors, reuse of a healthy server with the same config, replacing one with another config,
noticing within seconds that the engine died — lives here once.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..config import ServerConfig
from ..errors import (
    InsufficientMemory,
    ModelNotFound,
    PortInUse,
    ServerNotFound,
    ServerStartError,
)
from ..paths import servers_dir
from . import gpu

# Lines that mean the engine is dead even if the process or container still looks alive.
FATAL_LOG = re.compile(
    r"\bERROR \d\d-\d\d "  # vLLM's own error-level log lines
    r"|Engine core initialization failed|EngineDeadError"
    r"|: error: "  # argparse rejecting the command line
    r"|^Traceback \(most recent call last\)",
    re.MULTILINE,
)
# Once a fatal line is seen, how long the server still gets to answer /health.
FATAL_GRACE_S = 4.0
POLL_S = 0.5
LOG_TAIL_ON_ERROR = 40
# A start-up log is a few hundred lines; reading it whole keeps on_log from missing any.
START_LOG_LINES = 5000


@dataclass(frozen=True)
class ServerInfo:
    """A lab server as a runtime sees it (no API key: that stays in its key file)."""

    name: str
    runtime: str
    state: str
    """'running', or what the runtime reports otherwise ('exited', 'dead', ...)."""
    host: str
    port: int
    model_name: str
    config_hash: str
    ident: str
    """Container id or process id."""
    started: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def key_file(name: str) -> Path:
    return servers_dir() / f"{name}.key"


def new_api_key(name: str) -> str:
    """A fresh key per server start, stored 0600 where lab clients find it."""
    key = "lab-" + secrets.token_urlsafe(24)
    path = key_file(name)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(key)
    return key


def read_api_key(name: str) -> str | None:
    path = key_file(name)
    return path.read_text().strip() if path.exists() else None


def check_health(base_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


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
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


# Three Python processes (API server, engine core, worker) with torch loaded, measured ~1.5 GiB.
PROCESS_OVERHEAD_BYTES = 2 * 1024**3


def memory_needed(config: ServerConfig) -> int:
    """Rough floor of RAM a CPU server needs: weights + KV cache + process overhead."""
    weights = 0
    if config.model_path and config.model_path.is_dir():
        weights = sum(p.stat().st_size for p in config.model_path.glob("*.safetensors"))
    return weights + config.kv_cache_gib * 1024**3 + PROCESS_OVERHEAD_BYTES


def preflight(config: ServerConfig) -> None:
    """Checks that need no runtime: model, GPU, memory. Each failure says how to fix it."""
    if config.is_local_model:
        path = config.model_path
        assert path is not None
        if not path.is_dir():
            raise ModelNotFound(
                f"Model directory {path} does not exist.",
                cause="the path is wrong, or the bundled models are not prepared yet",
                fix="vllm-lab prepare-models  (then use lab_helpers.config.chat_server())",
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
        need, have = memory_needed(config), mem_available_bytes()
        if have and need > have:
            raise InsufficientMemory(
                f"Not enough free memory: the server needs about {need / 1024**3:.1f} GiB "
                f"(KV cache {config.kv_cache_gib} GiB + weights + processes), "
                f"{have / 1024**3:.1f} GiB is available.",
                cause="kv_cache_gib is too large, or other servers use the memory",
                fix="lower kv_cache_gib (e.g. config.replace(kv_cache_gib=1)) or stop other "
                "servers: vllm-lab down --all",
            )


def reuse_decision(
    existing: ServerInfo | None,
    config: ServerConfig,
    *,
    reuse: bool,
    has_key: bool,
    healthy: Callable[[], bool],
) -> str:
    """'start' (nothing there), 'reuse' (same config, running, healthy) or 'replace'.

    `healthy` is asked last, and only when everything else already says reuse: it is the one
    check that costs a network round trip.
    """
    if existing is None:
        return "start"
    same = existing.config_hash == config.config_hash()
    if reuse and same and existing.state == "running" and has_key and healthy():
        return "reuse"
    return "replace"


class Runtime(ABC):
    """How servers of one kind are launched and inspected. `start` is shared."""

    kind: str = ""

    # -- what each runtime provides --------------------------------------------------------

    @abstractmethod
    def command(self, config: ServerConfig) -> list[str]:
        """The exact argv that starts the server."""

    @abstractmethod
    def preview(self, config: ServerConfig) -> str:
        """The command as copy-pasteable shell text (no secrets in it)."""

    @abstractmethod
    def check(self, config: ServerConfig) -> None:
        """Runtime prerequisites (Podman usable, image present); raise a LabError if not."""

    @abstractmethod
    def _launch(self, config: ServerConfig, api_key: str) -> str:
        """Start it detached; return the container id or pid."""

    @abstractmethod
    def find(self, name: str) -> ServerInfo | None: ...

    @abstractmethod
    def list(self) -> list[ServerInfo]: ...

    @abstractmethod
    def remove(self, name: str) -> bool:
        """Stop and remove; True if there was something to remove."""

    @abstractmethod
    def logs(self, name: str, tail: int = 100) -> str: ...

    @abstractmethod
    def follow(self, name: str, tail: int = 20) -> Iterator[str]:
        """Yield log lines as they are written, until the server stops or the caller closes."""

    # -- shared behaviour ----------------------------------------------------------------

    def is_stale(self, info: ServerInfo) -> bool:
        """Left behind by a killed session: not running, or running with no key to reach it."""
        return info.state != "running" or read_api_key(info.name) is None

    def cleanup_stale(self) -> list[str]:
        removed = []
        for info in self.list():
            if self.is_stale(info):
                self.remove(info.name)
                removed.append(info.name)
        return removed

    def get(self, name: str) -> Server:
        info = self.find(name)
        if info is None:
            raise ServerNotFound(
                f"No {self.kind} lab server named {name!r}.",
                fix="start one (vllm-lab up) or list them (vllm-lab status)",
            )
        return Server(self, info)

    def start(
        self,
        config: ServerConfig,
        *,
        reuse: bool = True,
        timeout: float = 400.0,
        on_log: Callable[[str], None] | None = None,
    ) -> Server:
        """Start a server, or reuse a healthy one with the same config hash.

        A different config under the same name replaces the old server. While waiting for
        /health, the process or container and its log are watched: a dead engine fails the
        start within seconds with the last log lines, and nothing is left running.
        """
        began = time.monotonic()
        existing = self.find(config.name)
        decision = reuse_decision(
            existing, config, reuse=reuse, has_key=read_api_key(config.name) is not None,
            healthy=lambda: existing is not None and check_health(existing.base_url),
        )
        if decision == "reuse":
            assert existing is not None
            return Server(self, existing, config=config, reused=True,
                          startup_seconds=time.monotonic() - began)
        if decision == "replace":
            self.remove(config.name)
        preflight(config)
        self.check(config)
        self._require_port(config)
        api_key = new_api_key(config.name)
        self._launch(config, api_key)
        try:
            info = self._wait_healthy(config, began, timeout, on_log)
        except BaseException:
            self.remove(config.name)
            raise
        return Server(self, info, config=config, reused=False,
                      startup_seconds=time.monotonic() - began)

    def _require_port(self, config: ServerConfig) -> None:
        if port_is_free(config.host, config.port):
            return
        holder = next(
            (i for rt in _all_runtimes() for i in rt.list() if i.port == config.port), None
        )
        who = (f"lab server {holder.name!r} ({holder.runtime})" if holder
               else "another program")
        fix = (f"vllm-lab down {holder.name}" if holder
               else f"find it with `ss -ltnp 'sport = :{config.port}'`")
        raise PortInUse(
            f"Port {config.port} on {config.host} is already in use by {who}.",
            fix=f"{fix}, or pick a free port: config.replace(port={free_port(config.host)})",
        )

    def _wait_healthy(
        self,
        config: ServerConfig,
        began: float,
        timeout: float,
        on_log: Callable[[str], None] | None,
    ) -> ServerInfo:
        fatal_since: float | None = None
        reported = 0  # log lines already passed to on_log
        last_log_check = 0.0

        def read_log() -> list[str]:
            nonlocal reported
            lines = self.logs(config.name, tail=START_LOG_LINES).splitlines()
            if on_log:
                for line in lines[reported:]:
                    on_log(line)
            reported = max(reported, len(lines))
            return lines

        while True:
            now = time.monotonic()
            info = self.find(config.name)
            if info is None or info.state != "running":
                read_log()
                state = info.state if info else "gone"
                self._fail(config, f"The server {state} before it became healthy.")
            if check_health(info.base_url, timeout=1.0):
                read_log()
                return info
            if now - last_log_check >= 1.0:
                last_log_check = now
                lines = read_log()
                if fatal_since is None and any(FATAL_LOG.search(line) for line in lines):
                    fatal_since = now
            if fatal_since is not None and now - fatal_since > FATAL_GRACE_S:
                self._fail(config, "The vLLM engine failed while starting (its log shows an "
                                   "error and /health does not answer).")
            if now - began > timeout:
                self._fail(config, f"The server did not become healthy within {timeout:.0f} s.")
            time.sleep(POLL_S)

    def _fail(self, config: ServerConfig, what: str) -> None:
        tail = self.logs(config.name, tail=LOG_TAIL_ON_ERROR)
        raise ServerStartError(
            what,
            cause=_likely_cause(tail),
            fix="read the log lines below; fix the config (extra_args, kv_cache_gib, model) "
            "and start again. Nothing was left running.",
            details="--- last log lines ---\n" + tail,
        )


def _likely_cause(log: str) -> str:
    if "unrecognized arguments" in log or "error: argument" in log:
        return "an invalid vLLM argument in extra_args"
    if "InvalidCxxCompiler" in log:
        return "torch.compile needs a C++ compiler: use enforce_eager=True or the -compile image"
    if "memory" in log.lower() and ("KV" in log or "cache" in log):
        return "not enough memory for the KV cache"
    return ""


class Server:
    """A handle on one running lab server: health, logs, an OpenAI client, stop.

    As a context manager it stops the server on exit (tests, benchmarks). Servers started
    from notebooks outlive the kernel on purpose: the next module reuses them in a second.
    """

    def __init__(self, runtime: Runtime, info: ServerInfo, *, config: ServerConfig | None = None,
                 reused: bool = False, startup_seconds: float | None = None) -> None:
        self.runtime = runtime
        self.info = info
        self.config = config
        self.reused = reused
        self.startup_seconds = startup_seconds

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def base_url(self) -> str:
        return self.info.base_url

    @property
    def model_name(self) -> str:
        return self.info.model_name

    @property
    def api_key(self) -> str:
        return read_api_key(self.name) or ""

    def health(self) -> bool:
        return check_health(self.base_url)

    def logs(self, tail: int = 100) -> str:
        return self.runtime.logs(self.name, tail=tail)

    def follow_logs(self, tail: int = 20) -> Iterator[str]:
        return self.runtime.follow(self.name, tail=tail)

    def client(self, **kwargs: object):  # -> openai.OpenAI
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key=self.api_key, **kwargs)

    def stop(self) -> None:
        self.runtime.remove(self.name)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        how = "reused" if self.reused else "started"
        secs = f" in {self.startup_seconds:.1f} s" if self.startup_seconds is not None else ""
        return (f"<Server {self.name!r} {self.runtime.kind} {self.base_url} "
                f"model={self.model_name!r} ({how}{secs})>")


def _all_runtimes() -> list[Runtime]:
    from . import available_runtimes

    return available_runtimes()
