"""Shared fixtures (the test lab itself is set up by the repository's root conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.side_labs import (
    SIDE_LABS_IN_USE,
    local_runtime_env,
    podman_runtime_env,
    stop_servers,
)


def _side_lab(request, env: dict[str, str]) -> Iterator[dict[str, str]]:
    request.config.stash.setdefault(SIDE_LABS_IN_USE, []).append(env)
    yield env
    stop_servers(env)


@pytest.fixture(scope="session")
def local_runtime_lab(request) -> Iterator[dict[str, str]]:
    """The environment of the local-runtime lab (tests/side_labs.py).

    `./lab start` is tested in it (its background start of the chat server), and the browser
    tests, which come later, find that server warm as a learner would (where nbval's notebooks
    use Podman). Its servers are stopped before the first notebook runs (the root
    conftest.py: their memory is module 5's) or at the end of the session.
    """
    yield from _side_lab(request, local_runtime_env())


@pytest.fixture(scope="session")
def podman_runtime_lab(request) -> Iterator[dict[str, str]]:
    """The environment of the Podman-runtime lab (tests/side_labs.py): the browser tests'
    where nbval's notebooks run as local processes. Stopped like the local-runtime lab."""
    yield from _side_lab(request, podman_runtime_env())


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
