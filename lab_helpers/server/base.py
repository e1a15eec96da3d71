"""One server lifecycle for both runtimes: checks, reuse, launch, wait for health, fail fast.

A runtime (Podman or a local process) only knows how to launch, inspect, read logs of and
remove *its* kind of server. Everything a learner relies on — the pre-flight checks with clear
errors, reuse of a healthy server with the same config, replacing one with another config,
noticing within seconds that the engine died — lives here once.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from ..errors import PortInUse, ServerNameInUse, ServerNotFound, ServerStartError
from .checks import PROCESS_OVERHEAD_BYTES, free_port, port_is_free, preflight
from .config import ServerConfig
from .handle import Server, ServerInfo, check_health
from .keys import key_file, new_api_key, read_api_key, start_lock
from .startlog import LAUNCHED, StartBar, StartView, launching

__all__ = ["FATAL_LOG", "Runtime", "Server", "ServerInfo", "check_health", "free_port",
           "key_file", "port_is_free", "preflight", "read_api_key", "reuse_decision"]

# Lines that mean the engine is gone for good, even if the process or container still looks
# alive. Only these: vLLM logs harmless ERROR lines and tracebacks during a healthy start too.
FATAL_LOG = re.compile(
    r"Engine core initialization failed"
    r"|EngineCore failed to start"
    r"|EngineDeadError"
    r"|InvalidCxxCompiler"
    r"|^\S*(?:api_server|keyguard)(?:\.py)?: error: "  # argparse rejecting the command
    r"|^keyguard: refusing to start",
    re.MULTILINE,
)
# Once a fatal line is seen, how long the server still gets to answer /health.
FATAL_GRACE_S = 4.0
POLL_S = 0.5
LOG_TAIL_ON_ERROR = 40
# A start-up log is a few hundred lines; reading it whole keeps on_log from missing any.
START_LOG_LINES = 5000


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
    usable_first: ClassVar[int] = 1
    """Order in `available_runtimes()` (lower first): Podman before local processes."""
    _registered: ClassVar[list[type[Runtime]]] = []

    def __init_subclass__(cls, *, register: bool = False, **kwargs: Any) -> None:
        """`class X(Runtime, register=True)`: X is one of the lab's runtimes, listed by
        `available_runtimes()` (which this module provides without importing X's module)."""
        super().__init_subclass__(**kwargs)
        if register:
            Runtime._registered.append(cls)

    @classmethod
    def usable(cls) -> bool:
        """Can this runtime run servers on this machine (checked each time: cheap)."""
        return True

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
    def _launch(self, config: ServerConfig) -> str:
        """Start it detached (its key is in key_file(name) already); return the id or pid."""

    @abstractmethod
    def find(self, name: str) -> ServerInfo | None: ...

    @abstractmethod
    def list(self) -> list[ServerInfo]: ...

    @abstractmethod
    def _remove(self, name: str, grace: float) -> bool:
        """Stop (SIGTERM, SIGKILL after `grace` s) and remove; True if there was something."""

    @abstractmethod
    def logs(self, name: str, tail: int = 100) -> str: ...

    @abstractmethod
    def equivalents(self, name: str) -> dict[str, str]:
        """The plain shell commands for what the lab does with this server (list, logs,
        resources, stop, remove), to run in a terminal without the lab."""

    @abstractmethod
    def follow(self, name: str, tail: int = 20) -> Iterator[str]:
        """Yield log lines as they are written, until the server stops or the caller closes."""

    # -- shared behaviour ----------------------------------------------------------------

    def is_stale(self, info: ServerInfo) -> bool:
        """Left behind by a killed session: not running, or running with no key to reach it."""
        return info.state != "running" or read_api_key(info.name) is None

    def remove(self, name: str, grace: float = 10.0) -> bool:
        """Stop and remove the server and its key; True if there was something to remove.

        `grace`: seconds between SIGTERM and SIGKILL (vLLM shuts down cleanly in a few).
        """
        removed = self._remove(name, grace)
        if removed:
            key_file(name).unlink(missing_ok=True)
        return removed

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

    def decide(self, config: ServerConfig, *,
               reuse: bool = True) -> tuple[str, ServerInfo | None]:
        """What `start(config)` would do now ('start', 'reuse' or 'replace', see
        `reuse_decision`) and the server of that name, if any. Touches nothing."""
        existing = self.find(config.name)
        decision = reuse_decision(
            existing, config, reuse=reuse, has_key=read_api_key(config.name) is not None,
            healthy=lambda: existing is not None and check_health(existing.base_url),
        )
        return decision, existing

    def start(
        self,
        config: ServerConfig,
        *,
        reuse: bool = True,
        timeout: float = 400.0,
        on_log: Callable[[str], None] | None = None,
        progress: bool = True,
    ) -> Server:
        """Start a server, or reuse a healthy one with the same config hash.

        A different config under the same name replaces the old server. While waiting for
        /health, the process or container and its log are watched: a dead engine fails the
        start within seconds with the last log lines, and nothing is left running.
        `on_log` gets what a learner reads (startlog.StartView): the lab's own progress lines
        and the log without the known harmless lines, each kind explained once. Without it a
        start that launches shows one progress line (startlog.StartBar) unless `progress` is
        False.
        """
        began = time.monotonic()
        with start_lock(config.name):
            decision, existing = self.decide(config, reuse=reuse)
            if decision == "reuse":
                assert existing is not None
                return Server(self, existing, config=config, reused=True,
                              startup_seconds=time.monotonic() - began)
            return self._start_new(config, decision, existing, began, timeout,
                                   on_log=on_log, progress=progress)

    def _start_new(self, config: ServerConfig, decision: str, existing: ServerInfo | None,
                   began: float, timeout: float, *, on_log: Callable[[str], None] | None,
                   progress: bool) -> Server:
        """The checks, the launch and the wait of a start that does not reuse a server."""
        # Every check that can fail runs before the server being replaced is touched.
        replacing = existing if decision == "replace" else None
        # A replaced server gives back at least its processes' memory.
        freed = (PROCESS_OVERHEAD_BYTES if replacing is not None
                 and replacing.state == "running" else 0)
        preflight(config, freed_bytes=freed)
        self.check(config)
        self._require_name(config)
        self._require_port(config, replacing=replacing)
        if replacing is not None:
            self.remove(config.name)
        new_api_key(config.name)
        view = (StartView(on_log) if on_log else
                StartBar(config.name) if progress else None)
        try:
            if view:
                view.progress(launching(self.kind, config.model_name))
            self._launch(config)
            if view:
                view.progress(LAUNCHED)
            try:
                info = self._wait_healthy(config, began, timeout, view)
            except BaseException:
                # A server that failed to start has nothing to shut down cleanly.
                self.remove(config.name, grace=1.0)
                raise
        finally:
            if isinstance(view, StartBar):
                view.close()
        return Server(self, info, config=config, reused=False,
                      startup_seconds=time.monotonic() - began)

    def _require_name(self, config: ServerConfig) -> None:
        """One server per name across runtimes: they share the name's key file."""
        for rt in available_runtimes():
            if rt.kind == self.kind:
                continue
            other = rt.find(config.name)
            if other is not None and other.state == "running":
                raise ServerNameInUse(
                    f"A lab server named {config.name!r} already runs in the {rt.kind} runtime.",
                    cause="two runtimes cannot hold servers of the same name (they share its "
                    "API key file)",
                    fix=f"stop it first (vllm-lab down {config.name}), or pick another name: "
                    f"config.replace(name=\"{config.name}-{self.kind}\")",
                )

    def _require_port(self, config: ServerConfig, *,
                      replacing: ServerInfo | None = None) -> None:
        if port_is_free(config.host, config.port):
            return
        if replacing is not None and replacing.port == config.port:
            return  # held by the very server this start replaces
        holder = next(
            (i for rt in available_runtimes() for i in rt.list() if i.port == config.port), None
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
        view: StartView | None,
    ) -> ServerInfo:
        fatal_since: float | None = None
        reported = 0  # log lines already passed to the view (and scanned for fatal lines)
        last_log_check = 0.0

        def read_log() -> bool:
            """Pass new lines on; True if one of them says the engine is gone."""
            nonlocal reported
            lines = self.logs(config.name, tail=START_LOG_LINES).splitlines()
            new = lines[reported:]
            if view:
                for line in new:
                    view.line(line)
            reported = max(reported, len(lines))
            return any(FATAL_LOG.search(line) for line in new)

        while True:
            now = time.monotonic()
            info = self.find(config.name)
            if info is None or info.state != "running":
                read_log()
                state = info.state if info else "gone"
                self._fail(config, f"The server {state} before it became healthy.")
            if check_health(info.base_url, timeout=1.0):
                read_log()
                self._healthy(config)
                if view:
                    view.progress(f"healthy after {view.elapsed():.1f} s")
                return info
            if now - last_log_check >= 1.0:
                last_log_check = now
                if read_log() and fatal_since is None:
                    fatal_since = now
                if view:
                    view.tick()
            if fatal_since is not None and now - fatal_since > FATAL_GRACE_S:
                self._fail(config, "The vLLM engine failed while starting (its log says the "
                                   "engine is gone and /health does not answer).")
            if now - began > timeout:
                self._fail(config, f"The server did not become healthy within {timeout:.0f} s.")
            time.sleep(POLL_S)

    def _healthy(self, config: ServerConfig) -> None:  # noqa: B027 (optional hook)
        """Hook for a runtime to note that the server just became healthy."""

    def _fail(self, config: ServerConfig, what: str) -> None:
        # The cause is looked for in the whole start's log: the root cause of an engine that
        # failed is often far above the last lines (a long traceback, the shutdown after it).
        log = self.logs(config.name, tail=START_LOG_LINES)
        tail = "\n".join(log.splitlines()[-LOG_TAIL_ON_ERROR:])
        raise ServerStartError(
            what,
            cause=_likely_cause(log),
            fix="read the log lines below; fix the config (extra_args, kv_cache_gib, model) "
            "and start again. Nothing was left running.",
            details="--- last log lines ---\n" + tail,
        )


def _likely_cause(log: str) -> str:
    if "unrecognized arguments" in log or "error: argument" in log:
        return "an invalid vLLM argument in extra_args"
    if "InvalidCxxCompiler" in log:
        return ("torch.compile needs a C++ compiler, and this image has none: keep "
                "enforce_eager=True, or build the image with g++ (vllm-lab build-image "
                "--compiler) and start with `vllm-lab up --compile`")
    if "keyguard: refusing" in log:
        return "the server's API key file is missing or empty"
    if "memory" in log.lower() and ("KV" in log or "cache" in log):
        return "not enough memory for the KV cache"
    return ""


def available_runtimes() -> list[Runtime]:
    """The lab's runtimes that work here (Podman first), one instance of each."""
    kinds = sorted(Runtime._registered, key=lambda cls: cls.usable_first)
    return [cls() for cls in kinds if cls.usable()]
