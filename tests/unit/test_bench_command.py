"""`bench.guidellm_command`: the notebook's run as GuideLLM's own command line, parsed by
GuideLLM's CLI and its scenario model (no server: the run itself is in module 5)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from guidellm.__main__ import cli
from guidellm.schemas.benchmark import BenchmarkScenario

from lab_helpers import bench

SECRET = "sk-never-written"


def test_the_command_parses_and_its_scenario_is_the_same_load(tmp_path, tiny_model_dir):
    target = bench.Target("http://127.0.0.1:18000", "smollm2-135m-instruct",
                          str(tiny_model_dir), api_key=SECRET)
    load = bench.concurrent([1, 2], max_requests=[3, 4], prompt_tokens=64, output_tokens=16)
    key_file = tmp_path / "chat.key"
    command = bench.guidellm_command(target, load, tmp_path / "run", key_file=key_file)

    scenario_file = tmp_path / "run" / "scenario.json"
    assert SECRET not in command and SECRET not in scenario_file.read_text()
    spec = BenchmarkScenario.model_validate(json.loads(scenario_file.read_text())).spec
    assert spec.profile.streams == [1, 2] and spec.constraints[0].count == [3, 4]
    assert spec.data[0].prompt_tokens == 64 and spec.data[0].output_tokens == 16

    words = shlex.split(command)
    assert words[0] == "HF_HUB_OFFLINE=1" and words[2] == "run"
    assert Path(words[1]).name == "guidellm" and Path(words[1]).exists()
    backend = words[words.index("--backend") + 1]
    assert backend.endswith(f",api_key=$(cat {key_file})")
    args = [w.replace(f"$(cat {key_file})", "k") for w in words[3:]]
    ctx = cli.commands["run"].make_context("run", args)  # GuideLLM's own option parser
    params = {k: v for k, v in ctx.params.items() if v not in (None, (), [], False)}
    assert str(params["config"]) == str(scenario_file)  # --scenario is --config's alias
    assert params["backend"] == {"kind": "openai_http", "target": target.base_url,
                                 "model": target.model, "request_format": "/v1/completions",
                                 "api_key": "k"}
