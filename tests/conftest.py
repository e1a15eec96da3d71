"""Shared fixtures (the test lab itself is set up by the repository's root conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A directory that looks like a Hugging Face model to the lab's checks (not loadable)."""
    model = tmp_path / "tiny-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "max_position_embeddings": 2048, "hidden_size": 64, "num_hidden_layers": 2,
    }))
    (model / "model.safetensors").write_bytes(b"\0" * 1024)
    return model


@pytest.fixture
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty VLLM_LAB_HOME, so a test's server records and keys stay its own."""
    home = tmp_path / "lab-home"
    monkeypatch.setenv("VLLM_LAB_HOME", str(home))
    return home


@pytest.fixture
def desk(tmp_path: Path):
    """A fresh ACME support desk (SQLite, seeded) in the test's own folder."""
    from lab_helpers.support import SupportDesk

    return SupportDesk(tmp_path / "acme.sqlite")
