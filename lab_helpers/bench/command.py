"""The same GuideLLM run as a terminal command: `guidellm run --scenario FILE --backend ...`.

`run_benchmark` calls GuideLLM's Python entry point. A learner (or a CI job) runs the same
benchmark with GuideLLM's own CLI: `guidellm_command` writes the run's scenario (profile,
limits, synthetic data, tokenizer, outputs) to a JSON file and returns the command line that
runs it. The API key is never written: the command reads it from the server's key file when
it runs, in the `--backend` option, which replaces the scenario's backend.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from .load import Load
from .run import REQUEST_FORMAT, Target, scenario

SCENARIO_FILE = "scenario.json"


def guidellm_command(target: Target, load: Load, out_dir: str | Path, *,
                     key_file: str | Path | None = None) -> str:
    """Write `<out_dir>/scenario.json` and return the `guidellm run` command for it.

    The command writes GuideLLM's `benchmarks.json` and `benchmarks.csv` into `out_dir`,
    which `bench.load_report` and `bench.report_frame` read like any other run.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = json.loads(scenario(target, load, out).model_dump_json(exclude_none=True))
    spec["spec"]["backend"].pop("api_key", None)
    path = out / SCENARIO_FILE
    path.write_text(json.dumps(spec, indent=1) + "\n")
    backend = (f"kind=openai_http,target={target.base_url},model={target.model},"
               f"request_format={REQUEST_FORMAT}")
    if key_file is not None:
        backend += f",api_key=$(cat {shlex.quote(str(key_file))})"
    return (f"HF_HUB_OFFLINE=1 {shlex.quote(guidellm_program())} run --scenario "
            f'{shlex.quote(str(path))} --backend "{backend}"')


def guidellm_program() -> str:
    """GuideLLM's command as installed beside this Python (a notebook kernel's PATH may not
    hold the venv's bin folder), else `guidellm` from the PATH."""
    beside = Path(sys.executable).parent / "guidellm"
    return str(beside) if beside.exists() else "guidellm"
