"""The server panel in a real browser: start a server with its button, follow its log, stop it."""

from __future__ import annotations

import nbformat
import pytest

from .harness import open_notebook, run_all_cells, screenshot, wait_until, widget_button

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRATCH = "scratch_server_panel.ipynb"


def _state(row) -> str:
    text = row.inner_text()
    for state in ("unhealthy", "healthy", "starting", "stopping", "stopped"):
        if state in text:
            return state
    return text


def _assert_command_of_the_kernels_runtime(command: str, lab_env: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel (runtime "auto") previews the command of the runtime its kernel's lab uses
    (the kernel inherits JupyterLab's environment): a `podman run` with the lab's container,
    or the local launcher with the key file's variable."""
    from lab_helpers.server import choose_runtime
    from lab_helpers.server.config import embedding_server
    from lab_helpers.server.keyguard import KEY_FILE_ENV
    from lab_helpers.server.local import LAUNCHER

    for name in ("VLLM_LAB_HOME", "VLLM_LAB_PORT_BASE", "VLLM_LAB_RUNTIME"):
        if name in lab_env:
            monkeypatch.setenv(name, lab_env[name])
        else:
            monkeypatch.delenv(name, raising=False)
    cfg = embedding_server()
    kind, why = choose_runtime(cfg)
    assert f"--served-model-name {cfg.model_name}" in command and "--runner pooling" in command
    if kind == "podman":
        assert "podman run" in command and f"--name {cfg.container_name}" in command, (why, command)
        assert LAUNCHER.name in command
    else:
        assert "podman" not in command, (why, command)
        assert str(LAUNCHER) in command and f"{KEY_FILE_ENV}=" in command, (why, command)


def test_panel_starts_follows_and_stops_a_server(jupyterlab, page, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "vllm-lab", "display_name": "vLLM Lab",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from lab_helpers import server\n"
        "from lab_helpers.server.config import embedding_server\n"
        "from lab_helpers.widgets import ServerPanel\n"
        "cfg = embedding_server()\n"
        "server.stop(cfg.name)\n"
        "panel = ServerPanel([cfg], poll_interval=1.0)\n"
        "panel")]
    nbformat.write(nb, jupyterlab.root / SCRATCH)

    open_notebook(page, jupyterlab, SCRATCH)
    run_all_cells(page, timeout_s=120)
    # The panel's row for the embeddings server (the innermost box holding its model name).
    row = page.locator(".widget-vbox").filter(has_text="all-minilm-l6-v2").filter(
        has=page.locator("button.jupyter-button")).last
    row.wait_for(timeout=30_000)
    start = widget_button(row, "Start")
    wait_until(lambda: _state(row) == "stopped", 30, "the stopped state")
    row.get_by_text("command").click()  # the <details> with the exact command
    command = row.locator("pre").inner_text()
    _assert_command_of_the_kernels_runtime(command, jupyterlab.env, monkeypatch)

    # Start opens the log view, which follows the server's log while it starts.
    start.click()
    log = row.locator("textarea")
    wait_until(lambda: log.is_visible() and len(log.input_value().splitlines()) > 3, 120,
          "the log to show while starting")
    wait_until(lambda: _state(row) == "healthy", 240, "the server to become healthy")
    screenshot(page, "server-panel-healthy")
    widget_button(row, "Log").click()
    wait_until(lambda: not log.is_visible(), 10, "the log view to close")

    widget_button(row, "Stop").click()
    wait_until(lambda: _state(row) == "stopped", 60, "the server to stop")
    screenshot(page, "server-panel-stopped")
