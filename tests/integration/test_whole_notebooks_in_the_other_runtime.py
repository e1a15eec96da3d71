"""Modules 1 and 5 top to bottom in the runtime nbval's notebooks do not use (as local
processes where nbval uses Podman): every cell, hidden solutions and deep dives included.

The run itself started in the background when the tests were collected
(tests/other_runtime_notebooks.py); these tests read its report. Last in this folder, so the
run has had the integration tests' time to finish.
"""

from __future__ import annotations

import nbformat
import pytest

from lab_helpers.paths import REPO_ROOT
from tests.other_runtime_notebooks import NOTEBOOKS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_the_whole_notebook_runs_in_the_other_runtime(other_runtime_notebooks, notebook):
    run = other_runtime_notebooks
    cells = [c for c in run.cells() if c.notebook == notebook]
    failed = [f"{c.name} {c.outcome}:\n{c.message[-2500:]}" for c in cells
              if c.outcome != "passed"]
    assert not failed, (f"{notebook} in the {run.runtime} runtime (log: {run.log}):\n"
                        + "\n\n".join(failed))
    # Every code cell ran (nbval makes one test of each).
    nb = nbformat.read(REPO_ROOT / "notebooks" / notebook, as_version=4)
    assert len(cells) == sum(c.cell_type == "code" for c in nb.cells), (notebook, len(cells))
    # ... and its servers ran in that runtime: a local server writes its log in the lab's
    # home, a Podman one does not.
    written = sorted(p.name for p in (run.home / "logs").glob("*.log")
                     if p.stat().st_mtime >= run.report.stat().st_mtime - run.seconds())
    if run.runtime == "local":
        assert "chat.log" in written, written
    else:
        assert written == [], written
    print(f"{len(cells)} cells of {notebook} passed in the {run.runtime} runtime; "
          f"the run took {run.seconds():.0f} s beside the other tests")
