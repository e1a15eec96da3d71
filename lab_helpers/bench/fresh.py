"""Benchmarks on fresh servers: one per variant, measured one at a time, stopped afterwards.

    run = bench.run_variant(variant, load)          # start, benchmark, stop
    runs = bench.compare(variants, load)            # the same for each, under the same load

A benchmark never shares the cores with another server's start or load: that would spoil its
figures. What may overlap is the starts themselves. A CPU server's start keeps about one core
busy for about 20 s (two Python processes importing torch and vLLM, one after the other)
and an idle server uses no CPU, so `compare` starts the fresh servers of a CPU comparison
together (as many as the memory holds, `starts_at_once`) and only then benchmarks them, one at
a time, stopping each after its run. GPU servers start one at a time (they share the GPU's
memory). Each run's `window` and `server_window` (wall-clock seconds) show it.

A fresh server is named "bench-<label>" and owned by the benchmarking process (a lock the kernel
drops when that process dies): a second benchmark is refused while one runs, and a server left
by a killed benchmark is stopped by the next one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import server
from ..models import BUNDLED, prepare_model
from ..paths import models_dir, servers_dir
from ..server.checks import mem_available_bytes, memory_needed
from ..server.config import ServerConfig
from .load import Load
from .run import BenchError, BenchRun, Target, run_benchmark
from .tuning import Variant

# Kept free beside the servers a comparison starts together (the notebook, GuideLLM).
MEMORY_MARGIN_BYTES = 2 * 1024**3
# Measured here: a CPU server's three processes hold ~2.5 GiB besides weights and KV cache,
# 0.5 GiB more than `memory_needed`'s floor.
START_HEADROOM_BYTES = 1024**3


def starts_at_once(configs: list[ServerConfig], available: int | None = None) -> int:
    """How many of these fresh servers start together: all CPU servers whose memory fits
    (`memory_needed` + headroom each, MEMORY_MARGIN_BYTES left over), at least one; GPU
    servers one at a time."""
    if not configs:
        return 0
    if any(c.device != "cpu" for c in configs):
        return 1
    free = (mem_available_bytes() if available is None else available) - MEMORY_MARGIN_BYTES
    count = 0
    for config in configs:
        free -= memory_needed(config) + START_HEADROOM_BYTES
        if free < 0:
            break
        count += 1
    return max(1, count)


def run_variant(variant: Variant, load: Load, *, port: int | None = None,
                runtime: str = "auto", progress: bool = True,
                on_start: Callable[[object], None] | None = None) -> BenchRun:
    """Start a fresh server for `variant`, benchmark it, stop it (also on errors).

    Refused while another benchmark's "bench-*" server runs (its figures and this one's would
    both be wrong), with the command that stops it; one whose benchmark process was killed is
    stopped instead."""
    _refuse_busy()
    with contextlib.ExitStack() as stack:
        srv, window = _start(variant, port, runtime, stack)
        if on_start is not None:
            on_start(srv)
        return _measure(variant, srv, window, load, progress)


def compare(variants: list[Variant], load: Load, *, runtime: str = "auto",
            progress: bool = True) -> list[BenchRun]:
    """Each variant on a fresh server under the same load, measured one after the other.

    The servers start together first when they fit (`starts_at_once`); each is stopped right
    after its run, and every one still running is stopped if anything fails."""
    _refuse_busy()
    runs: list[BenchRun] = []
    pending = list(variants)
    while pending:
        group = pending[:starts_at_once([v.config for v in pending])]
        pending = pending[len(group):]
        with contextlib.ExitStack() as all_stacks:
            stacks = [all_stacks.enter_context(contextlib.ExitStack()) for _ in group]
            with ThreadPoolExecutor(len(group), thread_name_prefix="bench-start") as pool:
                started = list(pool.map(lambda vs: _start(vs[0], None, runtime, vs[1]),
                                        zip(group, stacks, strict=True)))
            for variant, (srv, window), stack in zip(group, started, stacks, strict=True):
                runs.append(_measure(variant, srv, window, load, progress))
                stack.close()  # stopped before the next run: its memory back, nothing idle
    return runs


def _refuse_busy() -> None:
    for name in stop_orphans():
        warnings.warn(f"stopped {name}, left running by a killed benchmark", stacklevel=3)
    busy = sorted(info.name for info in server.list_servers()
                  if info.name.startswith("bench-") and info.state == "running")
    if busy:
        raise BenchError(
            f"Another benchmark server is running: {', '.join(busy)}",
            cause="a benchmark still running in another notebook or shell; two servers would "
            "share the cores and spoil both figures",
            fix=f"vllm-lab down {' '.join(busy)}",
        )


def _start(variant: Variant, port: int | None, runtime: str, stack: contextlib.ExitStack
           ) -> tuple[server.Server, tuple[float, float]]:
    """The variant's fresh server, owned and stopped by `stack`; its start's wall-clock window."""
    _prepare_bundled(variant.config)
    config = variant.config.replace(name=variant.server_name,
                                    port=port if port is not None else server.free_port())
    began = time.time()
    stack.enter_context(_owning(config.name))
    srv = stack.enter_context(server.start(config, runtime=runtime,  # type: ignore[arg-type]
                                           reuse=False))
    return srv, (began, time.time())


def _measure(variant: Variant, srv: server.Server, window: tuple[float, float], load: Load,
             progress: bool) -> BenchRun:
    run = run_benchmark(Target.from_server(srv, label=variant.label), load,
                        label=variant.label, progress=progress)
    return dataclasses.replace(run, server_window=window)


def stop_orphans() -> list[str]:
    """Stop the "bench-*" servers whose benchmark process is gone (killed: its server, in a
    session of its own, outlives it); returns their names. Only servers `run_variant` started
    (they have an owner file) are candidates: a server someone started by hand is left alone."""
    stopped = []
    for info in server.list_servers():
        if (info.name.startswith("bench-") and _owner_path(info.name).exists()
                and owner_is_gone(info.name)):
            server.stop(info.name)
            _owner_path(info.name).unlink(missing_ok=True)
            stopped.append(info.name)
    return stopped


def _owner_path(name: str) -> Path:
    return servers_dir() / f"{name}.bench-owner"


@contextlib.contextmanager
def _owning(name: str) -> Iterator[None]:
    """Hold the benchmark server's owner lock while this process benchmarks it. The kernel
    drops the lock when the process dies, however it dies: that is how `owner_is_gone` knows."""
    path = _owner_path(name)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:  # the server is stopped by now (it is entered after this, left before)
            path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def owner_is_gone(name: str) -> bool:
    """True when no process holds the owner lock of benchmark server `name`."""
    path = _owner_path(name)
    if not path.exists():
        return True
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _prepare_bundled(config: ServerConfig) -> None:
    """Build the bundled model a variant serves if it is one and not prepared yet (seconds)."""
    path = config.model_path
    if path is not None and path.parent == models_dir().resolve() and path.name in BUNDLED:
        prepare_model(path.name, progress=False)
