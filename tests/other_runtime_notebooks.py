"""Modules 1 and 5, whole, in the runtime nbval's notebooks do not use, beside the rest of the run.

`./lab test` runs every notebook top to bottom under nbval in the default runtime (Podman
wherever it works). Modules 2-4 only use a running server and run whole again against a
local-process room server (tests/integration/test_room_join.py). Modules 1 and 5 drive the
runtime themselves (start, logs, stop; module 5's tuning starts fresh servers), so they run
whole a second time here, under nbval, in the other runtime: in a lab of their own (the test
lab's home + "-other-runtime", ports + 300), so they clash with nothing else.

That run is a pytest process of its own, started in the background when the tests are
collected (the root conftest.py), so it overlaps the unit and integration tests, whose server
starts leave a core idle much of the time; the `other_runtime_notebooks` fixture waits for it
and reads its JUnit report, one test per notebook
(tests/integration/test_whole_notebooks_in_the_other_runtime.py). The process ends its own
servers when it ends, as any test session does.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab_helpers.paths import REPO_ROOT
from tests.local_runtime_lab import default_runtime, side_lab_env

NOTEBOOKS = ("01_deploy_and_chat.ipynb", "05_benchmark.ipynb")
FIXTURE = "other_runtime_notebooks"
"""The fixture whose use (by a collected test) starts the background run."""
TIMEOUT_S = 2400
RUN = pytest.StashKey["Run"]()


@dataclass
class Cell:
    notebook: str
    name: str  # nbval's item name: "Cell 12"
    outcome: str  # "passed", "failed", "error" or "skipped"
    message: str


@dataclass
class Run:
    """The background nbval run: its process, environment and report files."""

    runtime: str | None  # None: there is no other runtime here
    why: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def home(self) -> Path:
        return Path(self.env["VLLM_LAB_HOME"])

    @property
    def report(self) -> Path:
        return self.home / "whole-notebooks.xml"

    @property
    def log(self) -> Path:
        return self.home / "whole-notebooks.log"

    def wait(self) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=TIMEOUT_S)

    def seconds(self) -> float:
        """How long the run's tests took (its report's own figure)."""
        return float(ET.parse(self.report).getroot().iter("testsuite").__next__().get("time"))

    def cells(self) -> list[Cell]:
        """Every notebook cell nbval ran, from the JUnit report."""
        cells = []
        for case in ET.parse(self.report).getroot().iter("testcase"):
            where = case.get("classname", "")  # "notebooks.01_deploy_and_chat.ipynb"
            notebook = next((n for n in NOTEBOOKS if n.removesuffix(".ipynb") in where), where)
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                found = case.find(kind)
                if found is not None:
                    outcome = "failed" if kind == "failure" else kind
                    message = (found.get("message") or "") + "\n" + (found.text or "")
                    break
            cells.append(Cell(notebook, case.get("name", ""), outcome, message.strip()))
        return cells


def other_runtime() -> tuple[str | None, str]:
    """(runtime, why): the runtime nbval's notebooks do not use, or None and why there is
    none (Podman is the other runtime only where it works and the lab image is built)."""
    if default_runtime() == "podman":
        return "local", "nbval's notebooks run in Podman"
    from lab_helpers.server.config import chat_server
    from lab_helpers.server.podman_cli import image_exists, podman_status

    usable, reason = podman_status()
    if not usable:
        return None, f"nbval's notebooks run as local processes and Podman is not usable " \
                     f"({reason}): there is no other runtime"
    image = chat_server("cpu").image
    if not image_exists(image):
        return None, (f"nbval's notebooks run as local processes; Podman works but {image} "
                      "is not built: run `vllm-lab build-image` (./lab test does)")
    return "podman", "nbval's notebooks run as local processes"


def start() -> Run:
    """Start the background nbval run of NOTEBOOKS in the other runtime's own lab."""
    runtime, why = other_runtime()
    env = side_lab_env("-other-runtime", 300, runtime or "local")
    run = Run(runtime, why, env)
    if runtime is None:
        return run
    run.report.unlink(missing_ok=True)
    with run.log.open("wb") as log:
        # The bundled models first, as `./lab start` does before a learner's module 1 (the
        # test lab prepares them on first use, maybe later than module 1's doctor cell runs
        # here); a model the test session is preparing meanwhile is waited for on its lock.
        # `exec`: an interrupt at the session's end reaches pytest itself.
        run.proc = subprocess.Popen(
            ["sh", "-c", '"$0" -m lab_helpers.cli prepare-models && exec "$0" -m pytest "$@"',
             sys.executable, "--nbval-lax", "--nbval-cell-timeout=900",
             *(f"notebooks/{n}" for n in NOTEBOOKS), "-p", "no:cacheprovider", "-q",
             f"--junitxml={run.report}"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    return run
