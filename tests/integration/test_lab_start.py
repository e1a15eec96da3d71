"""The README's first command: `./lab start` sets up (a no-op here) and serves JupyterLab."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from lab_helpers.server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_lab_start_serves_the_notebooks(tmp_path):
    port, token = free_port(), "lab-start-test"
    env = {**os.environ, "JUPYTER_ARGS": f"--port={port} --no-browser "
           f"--ServerApp.token={token}"}
    log = tmp_path / "lab-start.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / "lab"), "start"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        contents = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=2)
                if r.status_code == 200:
                    contents = r.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert contents is not None, log.read_text()[-3000:]
        names = {item["name"] for item in contents["content"]}
        assert "01_deploy_and_chat.ipynb" in names
        assert "[FAIL]" not in log.read_text(), "the doctor report printed by ./lab start"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
