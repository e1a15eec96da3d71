"""The README's first command: `./lab start` sets up (a no-op here), makes the learner's working
copies of the notebooks, starts the chat server in the background and serves JupyterLab.

It runs in the local-runtime lab (tests/integration/conftest.py): the server it starts there
is the one module 1's start cell finds warm in the browser tests later in the session.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lab_helpers import server
from lab_helpers.cli import start
from lab_helpers.paths import REPO_ROOT
from lab_helpers.server.config import chat_server

pytestmark = pytest.mark.integration

NOTEBOOKS = REPO_ROOT / "notebooks"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.ipynb"))}


def vllm_lab(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "lab_helpers.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def serve_until_listed(env: dict[str, str], log: Path, port: int, token: str) -> dict:
    """`./lab start` until JupyterLab lists its folder; JupyterLab is stopped after."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(REPO_ROOT / "lab"), "start"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2)
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise AssertionError(log.read_text()[-3000:])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_lab_start_serves_working_copies_and_starts_the_chat_server(
        local_runtime_lab, tmp_path, monkeypatch):
    env = dict(local_runtime_lab)
    vllm_lab(env, "down", "--all")  # a chat server from an earlier run: this one starts it
    port, token = server.free_port(), "lab-start-test"
    workspace = tmp_path / "my-notebooks"
    env.update(VLLM_LAB_WORKSPACE=str(workspace),
               JUPYTER_ARGS=f"--port={port} --no-browser --ServerApp.token={token}")
    shipped = digests(NOTEBOOKS)
    log = tmp_path / "lab-start.log"

    contents = serve_until_listed(env, log, port, token)
    printed = log.read_text()
    assert "[FAIL]" not in printed, "the doctor report printed by ./lab start"
    # JupyterLab serves the working copies, and the shipped notebooks stay as they are.
    assert {item["name"] for item in contents["content"]} >= set(shipped)
    assert digests(workspace) == shipped and digests(NOTEBOOKS) == shipped
    assert "starting the chat server 'chat' in the background" in printed
    assert "vllm-lab down chat" in printed

    # Module 1's first start: the same config finds that server (waiting for it if it is
    # still starting), and starts nothing.
    monkeypatch.setenv("VLLM_LAB_HOME", env["VLLM_LAB_HOME"])
    monkeypatch.setenv("VLLM_LAB_PORT_BASE", env["VLLM_LAB_PORT_BASE"])
    monkeypatch.setenv("VLLM_LAB_RUNTIME", "local")
    srv = server.start(chat_server("cpu"))
    assert srv.reused and srv.runtime.kind == "local"
    # The lab's own VLLM_LAB_* settings stay out of vLLM's environment: no warnings about them.
    assert "Unknown vLLM environment variable" not in srv.logs(tail=5000)
    assert "already running" in vllm_lab(env, "warm")
    # A server of that name with other settings is left alone (module 1's cell replaces it).
    monkeypatch.setattr(start, "chat_server", lambda profile: chat_server(profile).replace(
        max_model_len=1024))
    assert start.warm_start("cpu").action == "left"
    assert server.get("chat").info.ident == srv.info.ident and srv.health()

    # A second start keeps the learner's changes; a reset brings one module back as shipped
    # and keeps the learner's version beside it.
    first = sorted(workspace.glob("01_*.ipynb"))[0]
    changed = json.loads(first.read_text())
    changed["cells"][0]["source"] = "my notes"
    first.write_text(json.dumps(changed))
    assert vllm_lab(env, "workspace") == ""  # VLLM_LAB_WORKSPACE: the same folder
    assert json.loads(first.read_text())["cells"][0]["source"] == "my notes"
    out = vllm_lab(env, "workspace", "--reset", "01")
    assert "back as shipped" in out and digests(workspace)[first.name] == shipped[first.name]
    backups = list(workspace.glob("01_*.backup-*.ipynb"))
    assert len(backups) == 1 and json.loads(backups[0].read_text())["cells"][0]["source"] == \
        "my notes"
