"""The real bundled models: prepared into the default cache (shared with the rest of the suite,
never deleted here), checked against their own files, and rebuilt after damage in a separate
temporary lab home.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from lab_helpers.models import bundled as models

pytestmark = pytest.mark.integration

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}]


@pytest.fixture(scope="module")
def prepared() -> dict[str, Path]:
    return models.prepare_models(progress=False)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_chat_model_facts_come_from_its_config(prepared: dict[str, Path]) -> None:
    path = prepared[models.CHAT_MODEL]
    config = read_json(path / "config.json")
    facts = models.model_facts(path)
    assert facts.max_context == config["max_position_embeddings"]
    assert facts.architecture == config["architectures"][0]
    assert facts.architecture.endswith("ForCausalLM")
    assert facts.dtype == config["dtype"] == "bfloat16"
    assert facts.num_layers == config["num_hidden_layers"]
    assert facts.weight_bytes == sum(p.stat().st_size for p in path.glob("*.safetensors"))
    assert facts.weight_bytes == pytest.approx(2 * facts.num_parameters, rel=0.01)  # bf16
    assert not facts.is_embedding
    assert facts.has_chat_template
    assert "quantization_config" not in config


def test_embedding_model_facts_come_from_its_files(prepared: dict[str, Path]) -> None:
    path = prepared[models.EMBEDDING_MODEL]
    facts = models.model_facts(path)
    assert facts.is_embedding
    assert not facts.has_chat_template
    # vLLM serves sentence-transformers models with their max_seq_length, not BERT's maximum.
    assert facts.max_context == read_json(path / "sentence_bert_config.json")["max_seq_length"]
    assert facts.max_context <= read_json(path / "config.json")["max_position_embeddings"]
    assert (path / "modules.json").is_file() and (path / "1_Pooling" / "config.json").is_file()


@pytest.mark.parametrize("key", list(models.BUNDLED))
def test_prepared_model_is_complete_and_records_its_source(prepared, key: str) -> None:
    path = prepared[key]
    spec = models.BUNDLED[key]
    assert path == models.model_path(key)
    assert models.verify_model(path, full=True) == []
    manifest = read_json(path / models.MANIFEST)
    assert manifest["source"]["package"] == spec.package
    assert manifest["source"]["version"] == importlib.metadata.version(spec.package)
    assert manifest.get("base") == spec.base
    assert manifest.get("quantization") == spec.quantization
    assert not list(path.parent.glob(f".{key}.partial-*"))


def test_second_prepare_is_a_fast_no_op(prepared: dict[str, Path]) -> None:
    before = {k: (p.stat().st_ino, (p / models.MANIFEST).stat().st_mtime_ns)
              for k, p in prepared.items()}
    started = time.perf_counter()
    again = models.prepare_models(progress=False)
    elapsed = time.perf_counter() - started
    assert again == prepared
    assert elapsed < 1.0, f"no-op prepare took {elapsed:.2f} s"
    assert {k: (p.stat().st_ino, (p / models.MANIFEST).stat().st_mtime_ns)
            for k, p in again.items()} == before


def test_tokenizer_loads_the_hermes_template(prepared: dict[str, Path]) -> None:
    """vLLM takes the template from the tokenizer, so no --chat-template flag is needed."""
    from transformers import AutoTokenizer

    path = prepared[models.CHAT_MODEL]
    template = models.chat_template_text()
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.chat_template == template
    assert (path / "chat_template.jinja").read_text() == template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Weather in Oslo?"}], tools=TOOLS, tokenize=False,
        add_generation_prompt=True,
    )
    assert "<tools>" in text and text.endswith("<|im_start|>assistant\n")
    # The turn markers are single special tokens, and generation stops at <|im_end|>.
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") == read_json(
        path / "generation_config.json")["eos_token_id"]


def test_int8_copy_is_the_chat_model_with_int8_linear_weights(prepared) -> None:
    from safetensors import safe_open

    int8, bf16 = prepared[models.INT8_CHAT_MODEL], prepared[models.CHAT_MODEL]
    facts, base = models.model_facts(int8), models.model_facts(bf16)
    assert facts.quantization == "int8 (w8a8)" and base.quantization is None
    assert (facts.architecture, facts.max_context) == (base.architecture, base.max_context)
    assert facts.weight_bytes < 0.7 * base.weight_bytes
    with safe_open(int8 / "model.safetensors", "pt") as q, \
            safe_open(bf16 / "model.safetensors", "pt") as f:
        linear = [k for k in q.keys() if k.endswith("_proj.weight")]
        assert len(linear) == 7 * facts.num_layers  # q, k, v, o, gate, up, down
        for name in linear:
            weights = q.get_tensor(name)
            scale = q.get_tensor(name.replace("weight", "weight_scale")).float()
            assert str(weights.dtype) == "torch.int8"
            steps = (weights.float() * scale - f.get_tensor(name).float()).abs() / scale
            # Rounding to the nearest step, computed in bf16: at most one step off, 1/4 on average.
            assert steps.max() <= 1.0 and steps.mean() <= 0.3, name
    for file in ("chat_template.jinja", "tokenizer.json", "generation_config.json"):
        assert (int8 / file).read_bytes() == (bf16 / file).read_bytes()


def gguf_path() -> Path:
    spec = models.BUNDLED[models.CHAT_MODEL]
    return Path(str(importlib.metadata.distribution(spec.package).locate_file(spec.source)))


def test_without_tools_the_template_matches_smollm2s_own(prepared: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    gguf = gguf_path()
    original = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ours = AutoTokenizer.from_pretrained(prepared[models.CHAT_MODEL])
    for messages in (
        [{"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}],
    ):
        for gen in (True, False):
            kwargs = {"tokenize": False, "add_generation_prompt": gen}
            assert ours.apply_chat_template(messages, **kwargs) == original.apply_chat_template(
                messages, **kwargs)


def test_weights_match_the_dequantised_gguf(prepared: dict[str, Path]) -> None:
    """Guards against saving a freshly initialised model instead of the loaded weights."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors import safe_open

    tensor = next(t for t in GGUFReader(gguf_path()).tensors if t.name == "token_embd.weight")
    expected = dequantize(tensor.data, tensor.tensor_type)
    with safe_open(prepared[models.CHAT_MODEL] / "model.safetensors", "pt") as f:
        saved = f.get_tensor("model.embed_tokens.weight").float().numpy()
    assert saved.shape == expected.shape
    np.testing.assert_allclose(saved, expected, rtol=2**-7, atol=1e-6)  # bf16 rounding only


@pytest.mark.parametrize("as_string", [False, True], ids=["dict-arguments", "json-arguments"])
def test_vllm_hermes_parser_reads_the_rendered_tool_call(prepared, as_string: bool) -> None:
    """What the template teaches the model to write is what `--tool-call-parser hermes` parses."""
    from transformers import AutoTokenizer
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager

    tokenizer = AutoTokenizer.from_pretrained(prepared[models.CHAT_MODEL])
    arguments = {"city": "São Paulo", "days": 2}
    messages = [
        {"role": "user", "content": "Weather in São Paulo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather",
                         "arguments": json.dumps(arguments) if as_string else arguments},
        }]},
    ]
    text = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False)
    assistant = re.findall(r"<\|im_start\|>assistant\n(.*?)<\|im_end\|>", text, re.S)[-1]

    parser = ToolParserManager.get_tool_parser("hermes")(tokenizer)
    request = ChatCompletionRequest(model=models.CHAT_MODEL, messages=messages[:1], tools=TOOLS)
    result = parser.extract_tool_calls(assistant, request)
    assert result.tools_called
    assert [c.function.name for c in result.tool_calls] == ["get_weather"]
    assert json.loads(result.tool_calls[0].function.arguments) == arguments
    assert result.content.strip() == "Checking."


@pytest.mark.parametrize("key", list(models.BUNDLED))
def test_corrupted_cache_is_detected_and_rebuilt(prepared, key: str, tmp_path, monkeypatch):
    source = prepared[key]  # from the default cache, read before switching homes
    base = models.BUNDLED[key].base
    monkeypatch.setenv("VLLM_LAB_HOME", str(tmp_path))
    path = models.models_dir() / key
    shutil.copytree(source, path)
    if base:  # a derived model is rebuilt from its base's prepared directory
        shutil.copytree(prepared[base], models.models_dir() / base)
    assert models.is_prepared(key)

    weights = next(path.glob("*.safetensors"))
    size = weights.stat().st_size
    with weights.open("r+b") as f:
        f.truncate(size // 2)
    assert any(weights.name in p for p in models.verify_model(path))
    assert not models.is_prepared(key)

    rebuilt = models.prepare_model(key, progress=False)
    assert rebuilt == path
    assert weights.stat().st_size == size
    assert models.verify_model(path, full=True) == []
    assert models.model_facts(path) == dataclasses.replace(models.model_facts(source), path=path)
    assert models.verify_model(source, full=True) == []  # the shared cache was not touched
