"""JupyterLab in headless Chromium, driven by Playwright: reused by every module's browser test.

Debian's Chromium (/usr/bin/chromium) is used because Playwright's own browser download cannot
work offline. JupyterLab runs from the lab's .venv with the notebooks' own kernel, on a free
port, with the news/update prompts switched off so nothing covers the page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

CHROMIUM = os.environ.get("LAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class JupyterLab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    """The environment its kernels inherit (which lab home, ports and runtime)."""

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


def start_jupyterlab(root: Path, work: Path, port: int,
                     lab_env: dict[str, str] | None = None) -> JupyterLab:
    """Start JupyterLab on `root` with `lab_env` (default: this process's environment) for
    its kernels; wait until its API answers."""
    settings = work / "lab-settings"
    notif = settings / "@jupyterlab" / "apputils-extension"
    notif.mkdir(parents=True, exist_ok=True)
    (notif / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Render every cell: with windowing, cells scrolled out of view are not in the page.
    tracker = settings / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    token = secrets.token_hex(16)
    log = work / "jupyterlab.log"
    env = {**(os.environ if lab_env is None else lab_env),
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--ServerApp.token={token}", f"--notebook-dir={root}",
         "--ServerApp.disable_check_xsrf=True", "--allow-root"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/status?token={token}", timeout=2).status_code == 200:
                return JupyterLab(url, token, root, proc, log, env)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"JupyterLab did not answer within 90 s:\n{log.read_text()[-3000:]}")


def stop_jupyterlab(lab: JupyterLab) -> None:
    lab.process.terminate()
    try:
        lab.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        lab.process.kill()


def chromium_available() -> bool:
    return shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists()


def open_notebook(page, lab: JupyterLab, name: str) -> None:
    """Open a notebook and accept a kernel dialog if one appears."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-NotebookPanel", timeout=60_000)
    # The notebooks pin the vllm-lab kernel; a "Select Kernel" dialog may still appear.
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=3_000)
        page.locator(".jp-Dialog .jp-mod-accept").click()
    except Exception:  # noqa: BLE001 - no dialog is the normal case
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=120_000)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Poll `predicate` every half second; fail the test with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _run_menu(page, label: str) -> None:
    """Click Run > `label` (exact: "Restart Kernel and Run All Cells…" must not match)."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel").get_by_text(label, exact=True).click()


def _wait_idle(page, timeout_s: float) -> None:
    """Wait until the kernel is idle and no cell shows [*] (queued or running)."""
    deadline = time.monotonic() + timeout_s
    time.sleep(2)
    while time.monotonic() < deadline:
        busy = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").count()
        pending = page.locator(".jp-InputPrompt:has-text('[*]')").count()
        if not busy and not pending:
            return
        time.sleep(1)
    raise TimeoutError(f"cells still running after {timeout_s:.0f} s")


def run_all_cells(page, timeout_s: float = 900) -> None:
    """Run > Run All Cells, then wait until the kernel is idle and every cell has run."""
    page.locator(".jp-NotebookPanel").first.click()
    page.keyboard.press("Escape")
    _run_menu(page, "Run All Cells")
    _wait_idle(page, timeout_s)


def cell_index(notebook: Path, source_start: str) -> int:
    """Index of the one cell of `notebook` whose source starts with `source_start`.

    Tests name cells by their text, not their position, so adding a cell elsewhere in the
    notebook does not silently point a test at the wrong one.
    """
    cells = json.loads(notebook.read_text())["cells"]
    hits = [i for i, cell in enumerate(cells)
            if "".join(cell["source"]).lstrip().startswith(source_start)]
    assert hits, (f"no cell of {notebook.name} starts with {source_start!r}: the notebook "
                  "changed, update the test's anchor")
    assert len(hits) == 1, (f"cells {hits} of {notebook.name} all start with "
                            f"{source_start!r}: use a longer anchor")
    return hits[0]


def _cells(page, notebook: Path):
    """The notebook's cells in the page, once the page shows as many as the file holds."""
    count = len(json.loads(notebook.read_text())["cells"])
    cells = page.locator(".jp-Notebook .jp-Cell")
    wait_until(lambda: cells.count() == count, 30, f"{count} cells of {notebook.name}")
    return cells


def notebook_cell(page, notebook: Path, source_start: str):
    """The page's cell whose source starts with `source_start` (see cell_index)."""
    return _cells(page, notebook).nth(cell_index(notebook, source_start))


def _select(page, cell) -> None:
    """Make `cell` the active one in command mode (a click on its prompt: never a link)."""
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Escape")


def _assert_ran(page, cell, what: str) -> None:
    prompt = cell.locator(".jp-InputPrompt").first.inner_text()
    assert re.search(r"\[\d+\]", prompt), (
        f"the cell starting with {what!r} did not run (prompt {prompt!r}); tracebacks: "
        f"{error_outputs(page)}")


def run_up_to(page, notebook: Path, last: str, timeout_s: float = 900) -> None:
    """Run every cell from the top through the code cell starting with `last`, as a learner
    would with Run > Run All Above Selected Cell on the cell after it; wait until idle.

    Browser tests use it to run only what their widget needs: nbval runs whole notebooks.
    """
    cells = _cells(page, notebook)
    index = cell_index(notebook, last)
    if index + 1 == cells.count():
        run_all_cells(page, timeout_s)
    else:
        _select(page, cells.nth(index + 1))
        _run_menu(page, "Run All Above Selected Cell")
        _wait_idle(page, timeout_s)
    _assert_ran(page, cells.nth(index), last)


def run_cell(page, notebook: Path, source_start: str, timeout_s: float = 300) -> None:
    """Run the one code cell starting with `source_start` (Ctrl+Enter); wait until idle.

    For a widget cell below cells its widget does not need (run_up_to stops above them).
    """
    cell = notebook_cell(page, notebook, source_start)
    _select(page, cell)
    page.keyboard.press("Control+Enter")
    _wait_idle(page, timeout_s)
    _assert_ran(page, cell, source_start)


def error_outputs(page) -> list[str]:
    """Texts of the errors in the open notebook (JupyterLab renders them as stderr): IPython's
    tracebacks, and the lab's errors, shown as what / cause / fix with a last line that says
    `%tb` shows the full traceback (has-text matches either, case-insensitively)."""
    return page.locator(".jp-OutputArea-output[data-mime-type="
                        "'application/vnd.jupyter.stderr']:has-text('Traceback')"
                        ).all_inner_texts()


def widget_button(scope, label: str):
    """An ipywidgets button by its exact label (JupyterLab's own buttons, such as "Restart the
    kernel", would match a substring)."""
    return scope.locator("button.jupyter-button",
                         has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
