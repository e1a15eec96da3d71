"""Where the lab keeps its files: one home directory, overridable with VLLM_LAB_HOME.

Everything the lab prepares (models, compile cache, server records, logs, API keys) lives under
this home, so one `rm -rf` resets the lab and tests can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def lab_home() -> Path:
    """The lab's cache and state directory (default ~/.cache/vllm-lab)."""
    home = os.environ.get("VLLM_LAB_HOME")
    path = Path(home).expanduser() if home else Path.home() / ".cache" / "vllm-lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sub(name: str) -> Path:
    path = lab_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Prepared models, one Hugging Face directory each."""
    return _sub("models")


def servers_dir() -> Path:
    """One record per lab server (local runtime) and its API key (both runtimes)."""
    return _sub("servers")


def logs_dir() -> Path:
    """Server logs of the local runtime."""
    return _sub("logs")


def vllm_cache_dir() -> Path:
    """vLLM's own cache (torch.compile artefacts), shared by local processes and containers."""
    return _sub("vllm-cache")


def containers_dir() -> Path:
    """The Containerfile and containers.conf shipped with the lab."""
    return REPO_ROOT / "containers"
