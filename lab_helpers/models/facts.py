"""What a model directory says about itself: architecture, context length, size, kind.

Read from the directory's own files (config.json, tokenizer and sentence-transformers files,
safetensors headers), so the same call explains the lab's bundled models and any model a
learner points vLLM at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelNotFound

PREPARE_FIX = "vllm-lab prepare-models"

# Keys vLLM reads the context length from (vllm ModelArchConfigConvertor); it takes the smallest.
_CONTEXT_KEYS = (
    "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
    "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len",
)


@dataclass(frozen=True)
class ModelFacts:
    """What a notebook needs to size a server, read from the model's own files."""

    path: Path
    architecture: str
    model_type: str
    max_context: int | None  # what vLLM derives: use as the upper bound of --max-model-len
    context_source: str  # which file/key max_context came from
    hidden_size: int | None
    num_layers: int | None
    dtype: str | None
    weight_bytes: int
    num_parameters: int | None
    is_embedding: bool
    has_chat_template: bool
    quantization: str | None = None  # config.json's quantization_config, e.g. "int8 (w8a8)"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


# safetensors header dtype codes, spelled like config.json's "dtype".
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                       "I64": "int64", "I32": "int32", "I8": "int8", "U8": "uint8"}


def _safetensors_summary(weights: list[Path]) -> tuple[int | None, str | None]:
    """Parameter count and dtype from the safetensors headers (no tensor data is read)."""
    try:
        from safetensors import safe_open
    except ImportError:
        return None, None
    count, dtype = 0, None
    for file in weights:
        with safe_open(file, framework="numpy") as f:
            for name in f.keys():
                tensor = f.get_slice(name)
                n = 1
                for dim in tensor.get_shape():
                    n *= dim
                count += n
                code = tensor.get_dtype()
                dtype = dtype or _SAFETENSORS_DTYPES.get(code, code)
    return (count or None), dtype


def model_facts(path: str | Path) -> ModelFacts:
    """Architecture, context length, size and kind of a Hugging Face model directory.

    Everything comes from the directory (config.json, tokenizer and sentence-transformers
    files, safetensors headers), never from a table in the lab, so the same call explains
    any model a learner points vLLM at. The context length follows vLLM's rules: the smallest
    of the config's length keys, capped by the tokenizer's model_max_length, and replaced by a
    sentence-transformers max_seq_length (256 for all-MiniLM-L6-v2, not BERT's 512).
    """
    path = Path(path)
    config = _read_json(path / "config.json")
    if not config:
        raise ModelNotFound(
            f"{path} is not a Hugging Face model directory (no config.json)",
            fix=f"{PREPARE_FIX}, or pass the directory that contains config.json",
        )
    text = config.get("text_config") or config  # multimodal configs nest the language model

    context, source = None, "unknown"
    for key in _CONTEXT_KEYS:
        value = text.get(key)
        if isinstance(value, int) and (context is None or value < context):
            context, source = value, f"config.json:{key}"
    tokenizer_config = _read_json(path / "tokenizer_config.json")
    tok_max = tokenizer_config.get("model_max_length")
    if isinstance(tok_max, int) and context is not None and tok_max < context:
        context, source = tok_max, "tokenizer_config.json:model_max_length"
    st_max = _read_json(path / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(st_max, int):
        context, source = st_max, "sentence_bert_config.json:max_seq_length"

    weights = sorted(path.glob("*.safetensors"))
    num_parameters, header_dtype = _safetensors_summary(weights)
    architecture = (config.get("architectures") or ["unknown"])[0]
    return ModelFacts(
        path=path,
        architecture=architecture,
        model_type=config.get("model_type", "unknown"),
        max_context=context,
        context_source=source,
        hidden_size=_first(text, "hidden_size", "n_embd", "d_model"),
        num_layers=_first(text, "num_hidden_layers", "n_layer", "num_layers"),
        dtype=_first(config, "dtype", "torch_dtype") or header_dtype,
        weight_bytes=sum(p.stat().st_size for p in [*weights, *path.glob("*.bin")]),
        num_parameters=num_parameters,
        # sentence-transformers files, or a bare encoder (BertModel) without a generation head.
        is_embedding=(path / "modules.json").is_file()
        or (architecture.endswith("Model") and not architecture.endswith("LMHeadModel")),
        has_chat_template=(path / "chat_template.jinja").is_file()
        or (path / "chat_template.json").is_file()
        or bool(tokenizer_config.get("chat_template")),
        quantization=_quantization(config),
    )


def _quantization(config: dict[str, Any]) -> str | None:
    """A short description of config.json's quantization_config (None for plain weights)."""
    quant = config.get("quantization_config")
    if not isinstance(quant, dict):
        return None
    groups = quant.get("config_groups")
    if isinstance(groups, dict) and groups:
        scheme = next(iter(groups.values()))
        weights = (scheme or {}).get("weights") or {}
        acts = (scheme or {}).get("input_activations") or {}
        if weights.get("num_bits"):
            bits = f"w{weights['num_bits']}" + (f"a{acts['num_bits']}" if acts.get("num_bits")
                                                 else "")
            return f"{weights.get('type', 'int')}{weights['num_bits']} ({bits})"
    return str(quant.get("quant_method") or quant.get("format") or "quantized")
