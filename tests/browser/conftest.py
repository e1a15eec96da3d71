"""Browser fixtures: one JupyterLab and one Chromium for all the browser tests, stopped after them.

JupyterLab runs in the runtime nbval's notebooks of the same run do not use (tests/side_labs.py):
in `./lab test`, where the notebooks run in Podman, its kernels use the local-runtime lab, so
modules 1-5 in the browser use local-process servers (module 1's start cell finds the chat
server `./lab start` started there in the integration tests, if they ran; the other modules
reuse it); in `./lab test --other-runtime`, where the notebooks run as local processes, they
use the Podman-runtime lab. So the notebooks and the browser each run under both runtimes.
Without Podman both are local processes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lab_helpers.server import free_port
from tests.side_labs import other_runtime

from .harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chromium_available,
    start_jupyterlab,
    stop_jupyterlab,
)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture(scope="package")
def jupyterlab(request, tmp_path_factory):
    """JupyterLab on a copy of the notebooks: autosave must not write outputs into git."""
    work = tmp_path_factory.mktemp("jupyterlab")
    root = work / "notebooks"
    shutil.copytree(NOTEBOOKS, root)
    runtime, _why = other_runtime()
    lab_env = None if runtime is None else request.getfixturevalue(f"{runtime}_runtime_lab")
    lab = start_jupyterlab(root, work, free_port(), lab_env)
    yield lab
    stop_jupyterlab(lab)


@pytest.fixture(scope="package")
def browser():
    if not chromium_available():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (./lab test "
                    "installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
