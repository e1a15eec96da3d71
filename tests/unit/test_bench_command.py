"""`bench.guidellm_command`: the notebook's run as GuideLLM's own command line, parsed by
GuideLLM's CLI and its scenario model (no server: the run itself is in module 5)."""

from __future__ import annotations

import json
import shlex
import stat
from pathlib import Path

from guidellm.__main__ import cli
from guidellm.schemas.benchmark import BenchmarkScenario

from lab_helpers import bench

SECRET = "sk-never-written"


def test_the_command_parses_and_its_scenario_is_the_same_load(tmp_path, tiny_model_dir):
    target = bench.Target("http://127.0.0.1:18000", "smollm2-135m-instruct",
                          str(tiny_model_dir), api_key=SECRET)
    load = bench.concurrent([1, 2], max_requests=[3, 4], prompt_tokens=64, output_tokens=16)
    command = bench.guidellm_command(target, load, tmp_path / "run")

    # The key is in no command line (ps shows a running command's to every user): GuideLLM
    # reads it from the scenario file, which only its owner can read.
    scenario_file = tmp_path / "run" / "scenario.json"
    assert SECRET not in command
    assert stat.S_IMODE(scenario_file.stat().st_mode) == 0o600
    spec = BenchmarkScenario.model_validate(json.loads(scenario_file.read_text())).spec
    assert spec.backend.api_key.get_secret_value() == SECRET
    assert spec.backend.target == target.base_url and spec.backend.model == target.model
    assert spec.profile.streams == [1, 2] and spec.constraints[0].count == [3, 4]
    assert spec.data[0].prompt_tokens == 64 and spec.data[0].output_tokens == 16
    shown = bench.scenario_text(scenario_file)  # what a learner prints
    assert SECRET not in shown and json.loads(shown)["spec"]["backend"]["api_key"] == "***"

    words = shlex.split(command)
    assert words[0] == "HF_HUB_OFFLINE=1" and words[2] == "run"
    assert Path(words[1]).name == "guidellm" and Path(words[1]).exists()
    ctx = cli.commands["run"].make_context("run", words[3:])  # GuideLLM's own option parser
    params = {k: v for k, v in ctx.params.items() if v not in (None, (), [], False)}
    assert str(params["config"]) == str(scenario_file)  # --scenario is --config's alias
    assert set(params) == {"config"}, params  # everything else comes from the scenario


def test_a_server_without_a_key_gets_a_scenario_without_one(tmp_path, tiny_model_dir):
    target = bench.Target("http://127.0.0.1:18000", "m", str(tiny_model_dir))
    bench.guidellm_command(target, bench.concurrent([1], max_requests=2), tmp_path)
    spec = json.loads((tmp_path / "scenario.json").read_text())
    assert "api_key" not in spec["spec"]["backend"]
