"""The same GuideLLM run as a terminal command: `guidellm run --scenario FILE`.

`run_benchmark` calls GuideLLM's Python entry point. A learner (or a CI job) runs the same
benchmark with GuideLLM's own CLI: `guidellm_command` writes the run's scenario (backend,
profile, limits, synthetic data, tokenizer, outputs) to a JSON file and returns the command line
that runs it. GuideLLM reads a backend's API key from the scenario or from its `--backend`
option only (no environment variable), and an option is in the process's command line while it
runs, where `ps` shows it to every user of the machine: so the key goes into the scenario file,
written owner-only (0600) like the server's key file, and never into the command.
`scenario_text` is the file as a learner may print it: the key replaced by `***`.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from ..paths import replace_file
from .load import Load
from .run import Target, scenario

SCENARIO_FILE = "scenario.json"
HIDDEN = "***"


def guidellm_command(target: Target, load: Load, out_dir: str | Path) -> str:
    """Write `<out_dir>/scenario.json` (0600: it holds the key) and return the `guidellm run`
    command for it.

    The command writes GuideLLM's `benchmarks.json` and `benchmarks.csv` into `out_dir`,
    which `bench.load_report` and `bench.report_frame` read like any other run.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = json.loads(scenario(target, load, out).model_dump_json(exclude_none=True))
    if target.api_key:  # pydantic writes a SecretStr as "**********": the real key goes in
        spec["spec"]["backend"]["api_key"] = target.api_key
    path = out / SCENARIO_FILE
    replace_file(path, json.dumps(spec, indent=1) + "\n")
    return (f"HF_HUB_OFFLINE=1 {shlex.quote(guidellm_program())} run --scenario "
            f"{shlex.quote(str(path))}")


def scenario_text(path: str | Path) -> str:
    """The scenario file as JSON text with its API key shown as `***` (for printing)."""
    spec = json.loads(Path(path).read_text())
    backend = spec.get("spec", {}).get("backend", {})
    if backend.get("api_key"):
        backend["api_key"] = HIDDEN
    return json.dumps(spec, indent=1)


def guidellm_program() -> str:
    """GuideLLM's command as installed beside this Python (a notebook kernel's PATH may not
    hold the venv's bin folder), else `guidellm` from the PATH."""
    beside = Path(sys.executable).parent / "guidellm"
    return str(beside) if beside.exists() else "guidellm"
