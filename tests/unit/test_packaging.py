"""One source of dependencies, a CI that runs the README's command, notebooks without outputs."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_delegates_to_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    version = python.split("=", 1)[1]
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{version}.0")
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert len(pip) == 1, "environment.yml must not list packages of its own"
    match = re.fullmatch(r"-e \.\[([a-z,]+)\]", pip[0])
    assert match, pip
    extras = set(match.group(1).split(","))
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"])


def test_environment_yml_names_the_same_no_deps_packages():
    text = (ROOT / "environment.yml").read_text()
    line = next(ln for ln in text.splitlines() if "pip install --no-deps" in ln)
    named = set(line.split("--no-deps", 1)[1].split())
    assert named == set(PYPROJECT["tool"]["vllm-lab"]["no-deps"])
    removed = next(ln for ln in text.splitlines() if "pip uninstall -y" in ln)
    assert set(removed.split("-y", 1)[1].split()) == set(
        PYPROJECT["tool"]["vllm-lab"]["remove-after-install"])


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- two-commands -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S)
    assert block, "README must hold the two commands in a ```bash block after <!-- two-commands -->"
    return [ln.split("#")[0].strip() for ln in block.group(1).splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert commands == ["./lab start", "./lab test"]
    ci = (ROOT / ".ci" / "run").read_text()
    runs = re.findall(r"^(?:exec )?(\./lab .*?) </dev/null$", ci, re.M)
    # The README's test command, then the notebooks in the other runtime.
    assert runs == ["./lab test", "./lab test --other-runtime"], runs


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{path.name} carries outputs: nbstripout it"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"
        assert nb["metadata"]["kernelspec"]["name"] == "vllm-lab", path.name
