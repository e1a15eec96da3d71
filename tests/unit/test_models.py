"""Unit tests for lab_helpers.models: no real model is prepared here.

The chat template is rendered from the real file; the cache logic runs on tiny directories the
tests write, with a stand-in builder, under a temporary VLLM_LAB_HOME.
"""

from __future__ import annotations

import json
import re
import stat
import tomllib
from pathlib import Path

import jinja2
import numpy as np
import pytest
from safetensors.numpy import save_file
from transformers.utils.chat_template_utils import render_jinja_template

from lab_helpers.errors import ModelCacheError, ModelNotFound
from lab_helpers.models import bundled as models
from lab_helpers.paths import REPO_ROOT

TEMPLATE = models.chat_template_text("smollm2_hermes.jinja")
TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>\n", re.DOTALL)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city; returns <json> & \"quotes\" — ünïcode",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "description": "Current time",
                 "parameters": {"type": "object", "properties": {}}},
}


def render(messages: list[dict], tools: list[dict] | None = None, gen: bool = False) -> str:
    """Render like transformers' apply_chat_template (which vLLM uses)."""
    out, _ = render_jinja_template(
        [messages], tools=tools, chat_template=TEMPLATE, add_generation_prompt=gen
    )
    return out[0]


def turns(text: str) -> list[tuple[str, str]]:
    """Split ChatML into (role, content) turns; asserts nothing is left between turns."""
    found = TURN.findall(text)
    assert "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in found) == text.removesuffix(
        "<|im_start|>assistant\n"
    )
    return found


def tool_calls_in(text: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text, re.S)]


# --- chat template -----------------------------------------------------------------------------


def test_plain_chat_is_chatml_with_default_system_prompt() -> None:
    messages = [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke\nwith two lines"},
    ]
    found = turns(render(messages))
    assert found[0][0] == "system"
    assert "SmolLM" in found[0][1] and "<tools>" not in found[0][1]
    assert found[1:] == [(m["role"], m["content"]) for m in messages]


def test_own_system_prompt_replaces_default() -> None:
    messages = [{"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "Hello"}]
    found = turns(render(messages))
    assert found == [(m["role"], m["content"]) for m in messages]


@pytest.mark.parametrize("gen", [True, False])
def test_generation_prompt(gen: bool) -> None:
    text = render([{"role": "user", "content": "Hi"}], gen=gen)
    assert text.endswith("<|im_start|>assistant\n") is gen
    assert text.endswith("<|im_end|>\n") is not gen


def test_tools_are_listed_as_json_inside_tools_tags_in_the_system_turn() -> None:
    text = render([{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER, CLOCK])
    system = turns(text)[0]
    assert system[0] == "system"
    assert system[1].startswith("You are a helpful AI assistant named SmolLM")
    listed = re.search(r"<tools>\n(.*?)\n</tools>", system[1], re.S)
    assert listed, system[1]
    assert [json.loads(line) for line in listed.group(1).splitlines()] == [
        WEATHER["function"], CLOCK["function"]
    ]
    assert "<tool_call>" in system[1]  # the instructions show the call format


def test_tools_with_own_system_prompt_keep_it() -> None:
    text = render([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "?"}],
                  tools=[CLOCK])
    system = turns(text)[0][1]
    assert system.startswith("Be terse.") and "SmolLM" not in system
    assert "<tools>" in system


@pytest.mark.parametrize("as_string", [False, True], ids=["dict-arguments", "json-arguments"])
def test_assistant_tool_calls_render_as_hermes_tool_call_json(as_string: bool) -> None:
    calls = [("get_weather", {"city": "Zürich", "unit": "C"}), ("get_time", {})]
    messages = [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args) if as_string else args}}
            for i, (name, args) in enumerate(calls)
        ]},
    ]
    found = turns(render(messages, tools=[WEATHER, CLOCK]))
    role, content = found[-1]
    assert role == "assistant"
    assert tool_calls_in(content) == [{"name": n, "arguments": a} for n, a in calls]
    assert content.startswith("<tool_call>\n") and content.endswith("</tool_call>")


def test_text_before_tool_call_is_kept() -> None:
    messages = [{"role": "user", "content": "?"}, {"role": "assistant", "content": "Let me check.",
                "tool_calls": [{"function": {"name": "get_time", "arguments": "{}"}}]}]
    role, content = turns(render(messages))[-1]
    assert content.startswith("Let me check.\n<tool_call>\n")
    assert tool_calls_in(content) == [{"name": "get_time", "arguments": {}}]


def test_tool_results_go_back_as_one_user_turn_of_tool_responses() -> None:
    results = ['{"temperature": 21, "unit": "C"}', "12:00"]
    messages = [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather",
                                                         "arguments": {"city": "Paris"}}},
            {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": {}}},
        ]},
        {"role": "tool", "tool_call_id": "a", "content": results[0]},
        {"role": "tool", "tool_call_id": "b", "content": results[1]},
        {"role": "assistant", "content": "21 °C at noon."},
    ]
    found = turns(render(messages, tools=[WEATHER, CLOCK], gen=False))
    assert [r for r, _ in found] == ["system", "user", "assistant", "user", "assistant"]
    responses = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", found[3][1], re.S)
    assert responses == results
    assert json.loads(responses[0]) == json.loads(results[0])
    assert found[4] == ("assistant", "21 °C at noon.")


def test_output_does_not_depend_on_jinja_whitespace_settings() -> None:
    """vLLM and transformers use trim_blocks/lstrip_blocks; a plain Environment must agree."""
    env = jinja2.Environment()  # no trim_blocks/lstrip_blocks
    env.filters["tojson"] = lambda x: json.dumps(x, ensure_ascii=False)
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "cold"},
    ]
    plain = env.from_string(TEMPLATE).render(messages=messages, tools=[WEATHER],
                                             add_generation_prompt=True)
    assert plain == render(messages, tools=[WEATHER], gen=True)


# --- registry ----------------------------------------------------------------------------------


def test_registry_matches_constants_and_setup() -> None:
    assert models.BUNDLED[models.CHAT_MODEL].kind == "chat"
    assert models.BUNDLED[models.EMBEDDING_MODEL].kind == "embedding"
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    pinned = {re.split(r"[=<>!~ ]", req)[0] for req in pyproject["tool"]["vllm-lab"]["no-deps"]}
    for key, spec in models.BUNDLED.items():
        assert spec.key == key
        assert spec.package in pinned, f"{spec.package} is not installed by the lab setup"
        if spec.chat_template:
            assert models.chat_template_text(spec.chat_template).strip()


def test_unknown_model_key_says_which_exist(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VLLM_LAB_HOME", str(tmp_path))
    with pytest.raises(ModelNotFound) as err:
        models.prepare_model("gpt-17")
    assert models.CHAT_MODEL in err.value.fix


# --- model_facts -------------------------------------------------------------------------------


def write_model(path: Path, config: dict, tensors: dict[str, np.ndarray], **extra: object) -> Path:
    """A tiny Hugging Face directory: config.json, safetensors, any extra JSON files."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(path / "model.safetensors"))
    for name, content in extra.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_model_facts_of_a_causal_lm(tmp_path: Path) -> None:
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
              "num_hidden_layers": 3, "max_position_embeddings": 4096, "dtype": "bfloat16"}
    tensors = {"a": np.zeros((4, 8), np.float32), "b": np.zeros(5, np.float32)}
    path = write_model(tmp_path / "lm", config, tensors,
                       **{"tokenizer_config.json": {"model_max_length": 10**30},
                          "chat_template.jinja": "{{ messages }}"})
    facts = models.model_facts(path)
    assert facts.architecture == "LlamaForCausalLM"
    assert facts.model_type == "llama"
    assert facts.max_context == config["max_position_embeddings"]
    assert facts.context_source == "config.json:max_position_embeddings"
    assert (facts.hidden_size, facts.num_layers) == (8, 3)
    assert facts.dtype == "bfloat16"
    assert facts.weight_bytes == (path / "model.safetensors").stat().st_size
    assert facts.num_parameters == sum(t.size for t in tensors.values())
    assert not facts.is_embedding
    assert facts.has_chat_template


def test_model_facts_follow_vllm_context_rules(tmp_path: Path) -> None:
    """Smallest length key wins, then the tokenizer's model_max_length caps it."""
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_positions": 2048,
              "n_ctx": 4096, "max_seq_len": 1024, "n_embd": 16, "n_layer": 2}
    path = write_model(tmp_path / "gpt", config, {"w": np.zeros(2, np.float16)},
                       **{"tokenizer_config.json": {"model_max_length": 512}})
    facts = models.model_facts(path)
    assert (facts.max_context, facts.context_source) == (
        512, "tokenizer_config.json:model_max_length")
    assert (facts.hidden_size, facts.num_layers) == (16, 2)
    assert facts.dtype == "float16"  # from the safetensors header: config has no dtype
    assert not facts.is_embedding
    assert not facts.has_chat_template
    (path / "tokenizer_config.json").unlink()
    facts = models.model_facts(path)
    assert (facts.max_context, facts.context_source) == (
        config["max_seq_len"], "config.json:max_seq_len")


def test_model_facts_of_a_sentence_transformers_model(tmp_path: Path) -> None:
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 4,
              "num_hidden_layers": 1, "max_position_embeddings": 512}
    path = write_model(
        tmp_path / "st", config, {"emb": np.ones((3, 4), np.float32)},
        **{"modules.json": [{"idx": 0, "path": "", "type": "sentence_transformers.Transformer"}],
           "sentence_bert_config.json": {"max_seq_length": 128}},
    )
    facts = models.model_facts(path)
    assert facts.is_embedding
    assert facts.max_context == 128 < config["max_position_embeddings"]
    assert facts.context_source.startswith("sentence_bert_config.json")
    assert facts.dtype == "float32"
    assert not facts.has_chat_template


def test_model_facts_without_config_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as err:
        models.model_facts(tmp_path)
    assert "config.json" in str(err.value) and err.value.fix


# --- cache: verify, prepare, rebuild -----------------------------------------------------------


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch) -> dict:
    """A bundled "embedding" model whose source is a tiny directory, in a temporary lab home.

    Its carrier package is pytest (installed, with a real version) and it has the lab's chat
    template, so the source-version and template checks are exercised too.
    """
    monkeypatch.setenv("VLLM_LAB_HOME", str(tmp_path / "home"))
    source = write_model(
        tmp_path / "source", {"architectures": ["BertModel"], "max_position_embeddings": 64},
        {"w": np.arange(1000, dtype=np.float32)}, **{"1_Pooling/config.json": "{}"},
    )
    spec = models.BundledModel(key="tiny", kind="embedding", served_name="tiny",
                               package="pytest", source="unused", upstream="none/tiny",
                               chat_template="smollm2_hermes.jinja")
    monkeypatch.setitem(models.BUNDLED, "tiny", spec)
    calls = {"n": 0, "fail": False}

    def source_path(_spec: models.BundledModel) -> Path:
        calls["n"] += 1
        if calls["fail"]:
            raise OSError("disk full (simulated)")
        return source

    monkeypatch.setattr(models, "source_path", source_path)
    return calls


def manifest_of(path: Path) -> dict:
    return json.loads((path / models.MANIFEST).read_text())


def rewrite_manifest(path: Path, **changes: object) -> None:
    data = manifest_of(path) | changes
    (path / models.MANIFEST).write_text(json.dumps(data))


def test_prepare_builds_once_with_a_complete_manifest(fake_model: dict) -> None:
    assert not models.is_prepared("tiny")
    with pytest.raises(ModelCacheError) as err:
        models.model_path("tiny")
    assert err.value.fix == "vllm-lab prepare-models"

    path = models.prepare_model("tiny", progress=False)
    assert path == models.models_dir() / "tiny" == models.model_path("tiny")
    assert models.is_prepared("tiny")
    assert models.verify_model(path, full=True) == []
    manifest = manifest_of(path)
    files = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {models.MANIFEST}
    assert "1_Pooling/config.json" in manifest["files"]
    for name, entry in manifest["files"].items():
        assert entry["size"] == (path / name).stat().st_size
        assert entry["sha256"] == models.sha256_file(path / name)
    assert manifest["source"] == {"package": "pytest", "version": pytest.__version__,
                                  "path": "unused"}
    assert manifest["chat_template_sha256"] == models.sha256_text(TEMPLATE)
    assert manifest["format"] == models.FORMAT_VERSION
    # Readable by a container user, and no build leftovers beside the model.
    assert all((p.stat().st_mode & stat.S_IROTH) for p in path.rglob("*"))
    assert not list(models.models_dir().glob(".tiny.partial-*"))

    # Second call: no rebuild at all.
    inode = path.stat().st_ino
    assert models.prepare_model("tiny", progress=False) == path
    assert fake_model["n"] == 1 and path.stat().st_ino == inode
    assert models.prepare_models(["tiny"], progress=False) == {"tiny": path}
    assert fake_model["n"] == 1


@pytest.mark.parametrize("damage", [
    "no-manifest", "missing-file", "truncated", "other-format", "other-source-version",
    "other-template", "garbage-manifest",
])
def test_damaged_or_outdated_cache_is_detected_and_rebuilt(fake_model: dict, damage: str) -> None:
    path = models.prepare_model("tiny", progress=False)
    weights = path / "model.safetensors"
    if damage == "no-manifest":
        (path / models.MANIFEST).unlink()
    elif damage == "missing-file":
        (path / "1_Pooling" / "config.json").unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "other-format":
        rewrite_manifest(path, format=models.FORMAT_VERSION + 1)
    elif damage == "other-source-version":
        rewrite_manifest(path, source={"package": "pytest", "version": "0.0.1"})
    elif damage == "other-template":
        rewrite_manifest(path, chat_template_sha256="0" * 64)
    else:
        (path / models.MANIFEST).write_text("[1, 2")
    problems = models.verify_model(path)
    assert problems and not models.is_prepared("tiny")

    models.prepare_model("tiny", progress=False)
    assert fake_model["n"] == 2
    assert models.verify_model(path, full=True) == []


def test_same_size_change_needs_the_full_check(fake_model: dict) -> None:
    path = models.prepare_model("tiny", progress=False)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert models.verify_model(path) == []
    assert any("sha256" in p for p in models.verify_model(path, full=True))
    models.prepare_model("tiny", force=True, progress=False)
    assert models.verify_model(path, full=True) == []


def test_failed_build_leaves_no_directory_and_says_what_to_do(fake_model: dict) -> None:
    fake_model["fail"] = True
    with pytest.raises(ModelCacheError) as err:
        models.prepare_model("tiny", progress=False)
    assert "vllm-lab prepare-models" in err.value.fix
    assert "disk full" in str(err.value)
    assert not (models.models_dir() / "tiny").exists()
    assert not list(models.models_dir().glob(".tiny.partial-*"))


def test_failed_rebuild_keeps_the_previous_build(fake_model: dict) -> None:
    path = models.prepare_model("tiny", progress=False)
    before = manifest_of(path)
    fake_model["fail"] = True
    with pytest.raises(ModelCacheError):
        models.prepare_model("tiny", force=True, progress=False)
    assert manifest_of(path) == before
    assert models.verify_model(path, full=True) == []


def test_leftovers_of_a_killed_build_are_removed(fake_model: dict) -> None:
    leftover = models.models_dir() / ".tiny.partial-abc123"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")
    models.prepare_model("tiny", progress=False)
    assert not leftover.exists()


def test_verify_reports_a_missing_directory(tmp_path: Path) -> None:
    assert models.verify_model(tmp_path / "nothing")
    assert models.verify_model(tmp_path)  # exists, but no manifest
