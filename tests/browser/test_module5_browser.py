"""Module 5 in a real browser: run the notebook's first benchmark and see its chart rendered.

Only the cells up to the first chart run (Run > Run All Above Selected Cell), with two load
levels instead of six, so the test costs about a minute: nbval runs the whole notebook anyway.
"""

from __future__ import annotations

import json
import time

import pytest

from .harness import ARTIFACTS, error_outputs, open_notebook, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "05_benchmark.ipynb"
FIRST_CHART = "bench.plot_throughput(run.frame)"


def _smaller_copy(root) -> tuple[int, int]:
    """Two load levels in the browser's copy; the indexes of the run cell and the chart cell."""
    path = root / NOTEBOOK
    nb = json.loads(path.read_text())
    sources = ["".join(c["source"]) for c in nb["cells"]]
    params = next(i for i, s in enumerate(sources) if "STREAMS = [" in s)
    text = sources[params].replace("STREAMS = [1, 2, 4, 8, 16, 32]", "STREAMS = [1, 4]")
    assert text != sources[params], "the parameter cell changed: update this test"
    nb["cells"][params]["source"] = text
    path.write_text(json.dumps(nb))
    run = next(i for i, s in enumerate(sources) if s.startswith("load = bench.concurrent("))
    return run, next(i for i, s in enumerate(sources) if s.strip() == FIRST_CHART)


def _wait_idle(page, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    time.sleep(2)
    while time.monotonic() < deadline:
        busy = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").count()
        pending = page.locator(".jp-InputPrompt:has-text('[*]')").count()
        if not busy and not pending:
            return
        time.sleep(1)
    raise TimeoutError(f"cells still running after {timeout_s:.0f} s")


def test_first_benchmark_chart_renders(jupyterlab, page):
    run_cell, chart = _smaller_copy(jupyterlab.root)
    stop_at = chart + 1
    open_notebook(page, jupyterlab, NOTEBOOK)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(stop_at)
    cell.scroll_into_view_if_needed()
    cell.click()
    page.keyboard.press("Escape")
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel").get_by_text(
        "Run All Above Selected Cell", exact=True).click()
    _wait_idle(page, 600)
    # Only the cell that fails on purpose (a load without a limit) shows an error.
    errors = error_outputs(page)
    (ARTIFACTS / "module5-errors.txt").write_text("\n\n".join(errors))
    assert len(errors) == 1 and "BenchConfigError" in errors[0] and "Fix:" in errors[0], errors
    chart_cell = page.locator(".jp-Notebook .jp-Cell").nth(chart)
    image = chart_cell.locator(".jp-OutputArea-output img")
    image.wait_for(timeout=30_000)
    chart_cell.scroll_into_view_if_needed()
    screenshot(page, "module5-throughput-chart")
    box = image.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    # The table of the run above it: GuideLLM's figures, one row per level.
    table = page.locator(".jp-Notebook .jp-Cell").nth(run_cell).locator("table")
    text = table.inner_text()
    assert "requests_ok" in text and "concurrent@1" in text and "concurrent@4" in text
    assert table.locator("tbody tr").count() == 2
