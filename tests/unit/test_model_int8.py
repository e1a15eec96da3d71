"""The int8 copy (lab_helpers.models.int8) on a tiny Llama-style directory: real quantisation
with compressed-tensors, checked against the float weights it came from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lab_helpers.models import bundled as models
from lab_helpers.models.int8 import STEPS, write_int8_copy


def tiny_llama(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    tensors = {
        "model.embed_tokens.weight": rng.normal(size=(32, 16)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.normal(size=(16, 16)).astype(np.float32),
        "model.layers.0.mlp.down_proj.weight": (rng.normal(size=(16, 24)) * 0.02)
        .astype(np.float32),
        "model.norm.weight": np.ones(16, np.float32),
    }
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
        "num_hidden_layers": 1, "max_position_embeddings": 128, "dtype": "float32"}))
    (path / "chat_template.jinja").write_text("{{ messages }}")
    (path / models.MANIFEST).write_text("{}")
    return tensors


def test_linear_weights_become_int8_within_half_a_step(tmp_path: Path) -> None:
    original = tiny_llama(tmp_path / "src")
    steps = list(write_int8_copy(tmp_path / "src", tmp_path / "out", ignore=(models.MANIFEST,)))
    assert len(steps) == STEPS
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight"):
        q, scale = saved[name], saved[name.removesuffix("weight") + "weight_scale"]
        assert q.dtype == np.int8
        assert scale.shape == (q.shape[0], 1)  # one scale per output channel
        error = np.abs(q.astype(np.float32) * scale - original[name])
        assert (error <= scale / 2 + 1e-6).all()
        assert np.abs(q).max() == 127  # symmetric: each row's largest weight uses the full range
    for name in ("model.embed_tokens.weight", "model.norm.weight"):
        np.testing.assert_array_equal(saved[name], original[name])


def test_config_tells_vllm_the_scheme_and_the_rest_is_copied(tmp_path: Path) -> None:
    tiny_llama(tmp_path / "src")
    list(write_int8_copy(tmp_path / "src", tmp_path / "out", ignore=(models.MANIFEST,)))
    out = tmp_path / "out"
    quant = json.loads((out / "config.json").read_text())["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors"
    assert quant["format"] == "int-quantized"
    assert quant["ignore"] == ["lm_head"]
    scheme = quant["config_groups"]["group_0"]
    assert scheme["weights"]["num_bits"] == 8 and scheme["weights"]["strategy"] == "channel"
    assert scheme["input_activations"]["dynamic"] is True
    assert (out / "chat_template.jinja").read_text() == "{{ messages }}"
    assert not (out / models.MANIFEST).exists()
    facts = models.model_facts(out)
    assert facts.quantization == "int8 (w8a8)"
    assert models.model_facts(tmp_path / "src").quantization is None


def test_a_model_without_linear_projections_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    save_file({"w": np.zeros((4, 4), np.float32)}, str(tmp_path / "src" / "model.safetensors"))
    (tmp_path / "src" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="_proj.weight"):
        list(write_int8_copy(tmp_path / "src", tmp_path / "out"))


def test_derived_models_come_after_their_base() -> None:
    keys = list(models.BUNDLED)
    derived = [s for s in models.BUNDLED.values() if s.base]
    assert [s.key for s in derived] == [models.INT8_CHAT_MODEL]
    for spec in derived:
        base = models.BUNDLED[spec.base]
        assert keys.index(base.key) < keys.index(spec.key)
        assert (spec.kind, spec.package, spec.chat_template) == \
            (base.kind, base.package, base.chat_template)
