"""Module 1 under the other profile.

With PROFILE = "gpu" on a machine without a GPU, module 1 must stop at the cell that chooses
the profile, with the lab's error and its fix. (Under the other runtime, module 1 runs whole
in `./lab test --other-runtime`: tests/other_runtime_run.py.)
"""

from __future__ import annotations

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
              if "doctor.require_profile(PROFILE)" in c.source]
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
