"""Shared fixtures, and the test suite's own lab.

Tests never touch the learner's lab: before anything imports `lab_helpers`, this file points
VLLM_LAB_HOME at the test lab (`VLLM_LAB_TEST_HOME`, default ~/.cache/vllm-lab-test) and moves
every default port up (`VLLM_LAB_TEST_PORT_BASE`, default 18000). Server records, keys, logs,
prepared models, Podman container names (`vllm-lab-<instance>-<name>`) and stale cleanup all
follow the lab home, and the notebooks under nbval and JupyterLab in the browser tests inherit
the same environment. The test lab's servers are stopped when the session ends
(VLLM_LAB_TEST_KEEP_SERVERS=1 keeps them for the next run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

TEST_HOME = Path(os.environ.get("VLLM_LAB_TEST_HOME",
                                Path.home() / ".cache" / "vllm-lab-test")).expanduser()
os.environ["VLLM_LAB_HOME"] = str(TEST_HOME)
os.environ["VLLM_LAB_PORT_BASE"] = os.environ.get("VLLM_LAB_TEST_PORT_BASE", "18000")


@pytest.fixture(scope="session")
def chat_srv():
    """The lab's chat server (cpu profile, default runtime) in the test lab.

    Started once (or reused from an earlier run) and shared by every module's integration
    tests and by the notebooks, which start the same config under the same name.
    """
    from lab_helpers import server
    from lab_helpers.config import chat_server

    return server.start(chat_server("cpu"))


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("VLLM_LAB_TEST_KEEP_SERVERS") == "1":
        return
    from lab_helpers import server

    server.stop_all()


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
