"""Every results file the README, the docs and the notebooks cite exists, with the figures
they quote from it where the text names a key.

A figure in the text is either computed in the notebook or names the file under
`benchmarks/results/` it comes from (a bare name such as `tuning_rounds.json` next to a
full path counts too). A glob (`tuning*.json`) must match at least one file; a cited script
(`benchmarks/x.py`) must exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lab_helpers.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
CITED_FILE = re.compile(r"benchmarks/results/([\w*.-]+\.json)")
BARE_RESULT = re.compile(r"`([\w*-]+\.json)`")
CITED_SCRIPT = re.compile(r"benchmarks/([\w-]+\.py)")


def texts() -> dict[str, str]:
    out = {"README.md": (REPO_ROOT / "README.md").read_text()}
    for doc in sorted((REPO_ROOT / "docs").glob("*.md")):
        out[f"docs/{doc.name}"] = doc.read_text()
    for notebook in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        out[notebook.name] = "\n".join("".join(c["source"]) for c in cells)
    return out


TEXTS = texts()


@pytest.mark.parametrize("where", sorted(TEXTS))
def test_every_cited_results_file_exists(where):
    text = TEXTS[where]
    cited = set(CITED_FILE.findall(text))
    cited |= {name for name in BARE_RESULT.findall(text)
              if any(Path(name).stem.startswith(Path(c).stem.rstrip("*")) for c in cited)}
    missing = sorted(name for name in cited if not list(RESULTS.glob(name)))
    assert missing == [], f"{where} cites results that are not in benchmarks/results/"
    scripts = set(CITED_SCRIPT.findall(text))
    assert sorted(s for s in scripts if not (REPO_ROOT / "benchmarks" / s).exists()) == []


def test_the_check_sees_a_missing_file():
    assert CITED_FILE.findall("see `benchmarks/results/nothing-here.json`") == \
        ["nothing-here.json"]
    assert not list(RESULTS.glob("nothing-here.json"))


def test_first_cell_figures_in_the_readme_are_the_results_file():
    result = json.loads((RESULTS / "first_cell.json").read_text())
    readme = TEXTS["README.md"]
    assert f"{result['first_cell_s']} s" in readme
    assert f"{result['cold_first_cell_s']:.0f} s cold" in readme


def test_module_1s_cold_start_figures_are_the_results_file():
    """Module 1's KV-cache section quotes the cold starts of benchmarks/startup.py."""
    medians = {r["runtime"]: r["cold_median_s"] for r in
               json.loads((RESULTS / "startup.json").read_text())["results"]}
    notebook = json.loads((REPO_ROOT / "notebooks" / "01_deploy_and_chat.ipynb").read_text())
    text = " ".join("".join(c["source"]) for c in notebook["cells"]).replace("\n", " ")
    assert (f"{medians['podman']:.0f} s in Podman, {medians['local']:.0f} s as a local process"
            in text)


def test_the_executor_figures_quoted_are_the_results_file():
    """Modules 1 and 5 quote how much sooner the lab's default starts than vLLM's worker
    process on CPU (benchmarks/executor.py), and the config and settings table the range."""
    result = json.loads((RESULTS / "executor.json").read_text())
    saved = sorted(result["start_s_saved_by_default"])[len(result["start_s_saved_by_default"]) // 2]
    for notebook in ("01_deploy_and_chat.ipynb", "05_benchmark.ipynb"):
        text = TEXTS[notebook].replace("\n", " ")
        assert f"{saved:.0f} s" in text and "executor.json" in text, notebook
    starts = result["start_s"]
    quoted = (f"starts of {min(starts['default']):.0f}-{max(starts['default']):.0f} s instead of "
              f"{min(starts['worker-process']):.0f}-{max(starts['worker-process']):.0f} s")
    for source in ("config.py", "settings_table.py"):
        text = " ".join((REPO_ROOT / "lab_helpers" / "server" / source).read_text().replace(
            '"', " ").split())
        assert " ".join(quoted.split()) in text, source
    ratios = result["default_vs_worker_process_at_16"]
    assert min(ratios) >= result["targets"]["throughput_ratio"] - 0.05  # "the same, within noise"
