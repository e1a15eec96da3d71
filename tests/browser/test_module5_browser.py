"""Module 5 in a real browser: run the notebook's first benchmark and see its chart rendered.

Only the cells up to the first benchmark run (Run > Run All Above Selected Cell), with two load
levels instead of five, then the chart's cell on its own: the `guidellm` command-line cells
between them (a GuideLLM process of its own, half a minute) render nothing a browser must show,
and nbval runs the whole notebook anyway.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .harness import (
    ARTIFACTS,
    cell_index,
    error_outputs,
    notebook_cell,
    open_notebook,
    run_cell,
    run_up_to,
    screenshot,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "05_benchmark.ipynb"
FIRST_RUN = "load = bench.concurrent("
FIRST_CHART = "bench.plot_throughput(run.frame)"


def _smaller_copy(path: Path) -> None:
    """Two load levels in the browser's copy of the notebook."""
    nb = json.loads(path.read_text())
    params = cell_index(path, "PROFILE = ")
    text = "".join(nb["cells"][params]["source"])
    smaller, count = re.subn(r"^STREAMS = .*$", "STREAMS = [1, 4]", text, flags=re.M)
    assert count == 1, "the parameter cell has no `STREAMS = ...` line: update this test"
    nb["cells"][params]["source"] = smaller
    path.write_text(json.dumps(nb))


def test_first_benchmark_chart_renders(jupyterlab, page):
    notebook = jupyterlab.root / NOTEBOOK
    _smaller_copy(notebook)
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_up_to(page, notebook, FIRST_RUN, timeout_s=600)
    run_cell(page, notebook, FIRST_CHART, timeout_s=120)
    # Only the cell that fails on purpose (a load without a limit) shows an error.
    errors = error_outputs(page)
    (ARTIFACTS / "module5-errors.txt").write_text("\n\n".join(errors))
    assert len(errors) == 1 and "BenchConfigError" in errors[0] and "Fix:" in errors[0], errors
    chart_cell = notebook_cell(page, notebook, FIRST_CHART)
    image = chart_cell.locator(".jp-OutputArea-output img")
    image.wait_for(timeout=30_000)
    chart_cell.scroll_into_view_if_needed()
    screenshot(page, "module5-throughput-chart")
    box = image.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    # The table of the run above it: GuideLLM's figures, one row per level.
    table = notebook_cell(page, notebook, FIRST_RUN).locator("table")
    text = table.inner_text()
    assert "requests_ok" in text and "concurrent@1" in text and "concurrent@4" in text
    assert table.locator("tbody tr").count() == 2
