"""Module 1 under the other runtime and the other profile.

`./lab test` runs every notebook under nbval with the default runtime (Podman here). Module 1
is the one whose steps depend on the runtime (image, container health, start, stop), so those
steps run once more as local processes, in a lab of its own so its `chat` server does not
clash with the Podman one: every core cell (not tagged "optional") that drives or inspects the
runtime, with the earlier cells that define what they use, in the notebook's order. Which
cells those are is derived from the cells' code (`runtime_cells`), not listed by hand, so a
new runtime step is picked up by itself. The rest of the core path only talks HTTP to the
server (chat, metrics, search: the same requests whatever runs it); nbval runs it with the
default runtime, and tests/integration/test_chat.py and test_server_lifecycle.py run those
requests against local servers too. With PROFILE = "gpu" on a machine without a GPU it must
stop at the cell that chooses the profile, with the lab's error and its fix.
"""

from __future__ import annotations

import re
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
from tests.notebook_agenda import assigned_names

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


# What a cell does with the runtime: the lab's server API (`server.start`, `server.stop`,
# `server.preview`, `server.list_servers`, `server.choose_runtime`, ...), the image, the
# doctor (it reports the runtime chosen and who holds the lab's ports), the server panel, a
# server's log or health, the runtime chosen (RUNTIME), and the shell commands that look at
# processes and containers (`!ps`, `!podman`). Plain HTTP requests (ChatSession, metrics,
# `!curl`, search) are the same whatever runs the server.
RUNTIME_STEP = re.compile(r"\bserver\.\w+\(|\bbuild_image\(|\bdoctor\.\w+\(|\bServerPanel\("
                          r"|\.logs\(|\.health\(|\bRUNTIME\b"
                          r"|^\s*(?:\w+\s*=\s*)?!(?:ps|podman)\b", re.MULTILINE)
WORD = re.compile(r"\b[A-Za-z_]\w*\b")


def runtime_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of the core code cells that drive or inspect the runtime, plus, transitively,
    the latest earlier core cell defining each name they use (names in shell lines and
    f-strings included: every word counts), in notebook order."""
    core = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and "optional" not in c.metadata.get("tags", [])]
    defines = {i: assigned_names(nb.cells[i].source) for i in core}
    chosen = {i for i in core if RUNTIME_STEP.search(nb.cells[i].source)}
    todo = sorted(chosen)
    while todo:
        cell = todo.pop()
        for word in set(WORD.findall(nb.cells[cell].source)):
            definer = max((i for i in core if i < cell and word in defines[i]), default=None)
            if definer is not None and definer not in chosen:
                chosen.add(definer)
                todo.append(definer)
    return sorted(chosen)


def runtime_path(notebook: Path, into: Path) -> tuple[Path, list[int]]:
    """A copy of a notebook with only its runtime cells (`runtime_cells`)."""
    nb = nbformat.read(notebook, as_version=4)
    keep = runtime_cells(nb)
    nb.cells = [nb.cells[i] for i in keep]
    copy = into / notebook.name
    nbformat.write(nb, copy)
    return copy, keep


def test_runtime_cells_are_every_runtime_step_with_what_it_needs():
    nb = nbformat.read(MODULE1, as_version=4)
    keep = runtime_cells(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    core = [i for i in code if "optional" not in nb.cells[i].metadata.get("tags", [])]
    src = {i: nb.cells[i].source for i in code}
    # The module's runtime steps are all in: choose, image, preview, start, the port clash,
    # the process check, container health, logs, the second server, stop and restart.
    for step in ("doctor.run_checks()", "doctor.ready(checks)", "server.choose_runtime(",
                 "build_image(", "server.preview(cfg)",
                 "srv = server.start(cfg", "processes = !ps", 'name="second-chat"',
                 'if RUNTIME == "podman"', "srv.logs(", "embed = server.start(embed_cfg",
                 "server.stop(embed_cfg.name)", "ServerPanel("):
        assert [i for i in keep if step in src[i]], step
    # ... and so is every cell that defines a name they use (the imports, the profile, cfg).
    for needed in ("from lab_helpers import server", "PROFILE = lab_profile()",
                   "cfg = chat_server(PROFILE)", "settings = settings_table(cfg)"):
        assert [i for i in keep if needed in src[i]], needed
    # Only core cells, and not all of them: the chat, metrics and search cells stay out.
    assert set(keep) < set(core)
    left_out = [src[i] for i in core if i not in keep]
    assert any("ChatSession(srv" in s for s in left_out)
    assert not any(RUNTIME_STEP.search(s) for s in left_out)


def test_module1_runtime_steps_run_as_local_processes(local_runtime_lab):
    """Module 1's runtime cells (`runtime_cells`) as local processes, in order. Its first
    start finds the chat server `./lab start` started in the background (test_lab_start.py),
    if that ran first."""
    env = {**local_runtime_lab, "VLLM_LAB_TEST_HOME": local_runtime_lab["VLLM_LAB_HOME"],
           "VLLM_LAB_TEST_PORT_BASE": local_runtime_lab["VLLM_LAB_PORT_BASE"]}
    # The copy lives in the repository (a hidden folder pytest does not collect), so the
    # repository's conftest.py sets up the lab for it as for the notebooks themselves.
    with tempfile.TemporaryDirectory(dir=REPO_ROOT, prefix=".runtime-path-") as folder:
        copy, keep = runtime_path(MODULE1, Path(folder))
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=900",
             str(copy), "-q", "-p", "no:cacheprovider"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert f"{len(keep)} passed" in proc.stdout and "failed" not in proc.stdout
