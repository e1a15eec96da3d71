"""An int8 copy of a prepared model: module 5's tuned weights for a CPU.

Every linear projection (q/k/v/o, gate/up/down) gets int8 weights with one scale per output
channel; activations are quantised per token at run time. That is compressed-tensors' W8A8
preset, written in its "int-quantized" format, which vLLM's CPU backend runs on oneDNN's int8
kernels (a GEMM reads a byte per weight instead of two). Embeddings, norms and the tied lm_head
stay bf16. On this lab's 2-core CPU that, with torch.compile, gave about 1.5x the default's
output tokens/s at 16 users (`benchmarks/tuning.py`). Takes seconds for SmolLM2-135M.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

# Steps write_int8_copy yields, for the caller's progress bar.
STEPS = 3
QUANTIZED_SUFFIX = "_proj.weight"  # Llama-style names of the linear layers' weights


def write_int8_copy(src: Path, out: Path, *, ignore: tuple[str, ...] = ()) -> Iterator[str]:
    """Write `src` (a bf16/fp32 Hugging Face directory) to `out` with int8 linear weights.

    Tokenizer, chat template and generation config are copied unchanged; `config.json` gains
    the `quantization_config` vLLM reads to pick its int8 kernels.
    """
    import torch
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationStatus,
        preset_name_to_scheme,
    )
    from compressed_tensors.quantization.lifecycle.forward import quantize
    from compressed_tensors.quantization.utils import calculate_qparams
    from safetensors.torch import load_file, save_file

    yield "Copying tokenizer and config"
    shutil.copytree(src, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors", *ignore))
    scheme = preset_name_to_scheme("W8A8", ["Linear"])
    args = scheme.weights

    yield "Quantising linear weights to int8"
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(src.glob("*.safetensors")):
        tensors.update(load_file(file))
    if not any(key.endswith(QUANTIZED_SUFFIX) for key in tensors):
        raise ValueError(f"{src} has no *{QUANTIZED_SUFFIX} tensors: not a Llama-style model")
    quantised: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if key.endswith(QUANTIZED_SUFFIX):
            scale, zero = calculate_qparams(tensor.amin(dim=1, keepdim=True),
                                            tensor.amax(dim=1, keepdim=True), args)
            quantised[key] = quantize(tensor, scale, zero, args, dtype=torch.int8)
            quantised[key.removesuffix("weight") + "weight_scale"] = scale
        else:
            quantised[key] = tensor

    yield "Saving int8 safetensors"
    save_file(quantised, out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    config["quantization_config"] = QuantizationConfig(
        config_groups={"group_0": scheme}, ignore=["lm_head"], format="int-quantized",
        quantization_status=QuantizationStatus.COMPRESSED).model_dump(mode="json")
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
