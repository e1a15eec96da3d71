"""Module 1 under the other runtime and the other profile.

`./lab test` runs every notebook under nbval with the default runtime (Podman here). Module 1
is the one whose steps depend on the runtime (image, container health, start, stop), so its
core path (every cell not tagged "optional") runs once more top to bottom as local processes,
in a lab of its own so its `chat` server does not clash with the Podman one. With PROFILE =
"gpu" on a machine without a GPU it must stop at the cell that chooses the profile, with the
lab's error and its fix.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from lab_helpers.paths import REPO_ROOT
from lab_helpers.server.gpu import gpu_status

pytestmark = pytest.mark.integration

MODULE1 = REPO_ROOT / "notebooks" / "01_deploy_and_chat.ipynb"


@pytest.mark.skipif(gpu_status()[0], reason="this machine has a GPU")
def test_gpu_profile_stops_at_the_profile_cell_with_the_fix(tmp_path, monkeypatch):
    # The lab's one switch, as a learner sets it (the kernel inherits the environment).
    monkeypatch.setenv("VLLM_LAB_PROFILE", "gpu")
    nb = nbformat.read(MODULE1, as_version=4)
    chosen = [i for i, c in enumerate(nb.cells)
              if c.source.startswith("PROFILE = lab_profile()")]
    assert len(chosen) == 1
    client = NotebookClient(nb, timeout=600, kernel_name="vllm-lab",
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError) as err:
        client.execute()
    failed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
        o.get("output_type") == "error" for o in c.get("outputs", []))
        and "raises-exception" not in c.metadata.get("tags", [])]
    assert failed == chosen, f"stopped at cell {failed}, not at the profile cell {chosen}"
    assert err.value.ename == "GPUUnavailable"
    assert "cpu profile" in str(err.value) and "Fix:" in str(err.value)


def core_path(notebook: Path, into: Path) -> Path:
    """A copy of a notebook without its cells tagged "optional" (the deep dives)."""
    nb = nbformat.read(notebook, as_version=4)
    core = [c for c in nb.cells if "optional" not in c.metadata.get("tags", [])]
    assert 0 < len(core) < len(nb.cells), "no optional cells: the core path is the notebook"
    nb.cells = core
    copy = into / notebook.name
    nbformat.write(nb, copy)
    return copy


def test_module1_core_path_runs_top_to_bottom_as_local_processes(local_runtime_lab):
    """The core path without the optional deep dives, which also shows that no later cell
    needs them (nbval ran them all under the default runtime). Its first start finds the chat
    server `./lab start` started in the background (test_lab_start.py), if that ran first."""
    env = {**local_runtime_lab, "VLLM_LAB_TEST_HOME": local_runtime_lab["VLLM_LAB_HOME"],
           "VLLM_LAB_TEST_PORT_BASE": local_runtime_lab["VLLM_LAB_PORT_BASE"]}
    # The copy lives in the repository (a hidden folder pytest does not collect), so the
    # repository's conftest.py sets up the lab for it as for the notebooks themselves.
    with tempfile.TemporaryDirectory(dir=REPO_ROOT, prefix=".core-path-") as folder:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=900",
             str(core_path(MODULE1, Path(folder))), "-q", "-p", "no:cacheprovider"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
