"""The notebooks' checks can fail.

nbval compares a cell's output only when the committed cell has an output and an execution
count; the notebooks are committed stripped, so a `# NBVAL_CHECK_OUTPUT` marker compares
nothing. Checks are plain `assert` cells instead, and this file proves that nbval (run as
`./lab test` runs it) fails a notebook whose checked value changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_inert_output_markers(path):
    nb = nbformat.read(path, as_version=4)
    marked = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert marked == [], f"cells {marked}: stripped outputs make these markers compare nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_checks_its_work_with_assertions(path):
    nb = nbformat.read(path, as_version=4)
    checks = [c for c in nb.cells if c.cell_type == "code" and "assert " in c.source]
    assert len(checks) >= 3


def _run_nbval(tmp_path: Path, value: str) -> subprocess.CompletedProcess[str]:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(f"tickets_resolved = {value}"),
        nbformat.v4.new_markdown_cell("**Check your work:** 150 tickets were resolved."),
        nbformat.v4.new_code_cell("assert tickets_resolved == 150"),
    ]
    path = tmp_path / f"check_{value}.ipynb"
    nbformat.write(nb, path)
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", str(path), "-q",
                           "-p", "no:cacheprovider"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def test_a_changed_value_fails_the_notebook_run(tmp_path):
    assert _run_nbval(tmp_path, "150").returncode == 0
    failed = _run_nbval(tmp_path, "149")
    assert failed.returncode == 1, failed.stdout[-2000:]
    assert "AssertionError" in failed.stdout
