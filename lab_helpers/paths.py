"""Where the lab keeps its files: one home directory, overridable with VLLM_LAB_HOME.

Everything the lab prepares (models, compile cache, server records, logs, API keys) lives under
this home, so one `rm -rf` resets the lab and tests can point it elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT_BASE = 8000


def default_lab_home() -> Path:
    return Path.home() / ".cache" / "vllm-lab"


def lab_home() -> Path:
    """The lab's cache and state directory (default ~/.cache/vllm-lab)."""
    home = os.environ.get("VLLM_LAB_HOME")
    path = Path(home).expanduser() if home else default_lab_home()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def lab_instance() -> str:
    """Which lab this is, for names outside the lab home (Podman containers, processes).

    "default" for ~/.cache/vllm-lab; another home (the test suite's, a second learner's)
    gets a short hash of its path, so its containers never clash with the default lab's.
    """
    home = os.environ.get("VLLM_LAB_HOME")
    if not home or Path(home).expanduser().resolve() == default_lab_home().resolve():
        return "default"
    return "i" + hashlib.sha256(str(Path(home).expanduser().resolve()).encode()).hexdigest()[:8]


def container_name(server_name: str) -> str:
    """`vllm-lab-chat` in the default lab, `vllm-lab-<instance>-chat` in any other."""
    instance = lab_instance()
    prefix = "vllm-lab" if instance == "default" else f"vllm-lab-{instance}"
    return f"{prefix}-{server_name}"


def port_base() -> int:
    """First port of the lab's servers (chat = base, embeddings = base + 1, ...).

    VLLM_LAB_PORT_BASE moves them all, so a test run never takes the learner's ports.
    """
    return int(os.environ.get("VLLM_LAB_PORT_BASE", DEFAULT_PORT_BASE))


def _sub(name: str) -> Path:
    path = lab_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """Prepared models, one Hugging Face directory each."""
    return _sub("models")


def servers_dir() -> Path:
    """One record per lab server (local runtime) and its API key (both runtimes): owner-only."""
    path = _sub("servers")
    path.chmod(0o700)
    return path


def logs_dir() -> Path:
    """Server logs of the local runtime."""
    return _sub("logs")


def vllm_cache_dir() -> Path:
    """vLLM's own cache (torch.compile artefacts), shared by local processes and containers."""
    return _sub("vllm-cache")


def containers_dir() -> Path:
    """The Containerfile and containers.conf shipped with the lab."""
    return REPO_ROOT / "containers"


def workspace_dir() -> Path:
    """The learner's working copies of the notebooks (`./lab start` serves them):
    VLLM_LAB_WORKSPACE, or `my-notebooks/` beside `notebooks/` (git-ignored)."""
    return Path(os.environ.get("VLLM_LAB_WORKSPACE", REPO_ROOT / "my-notebooks")).expanduser()


def shipped_notebooks_dir() -> Path:
    """The notebooks as shipped (git-tracked; never written by the lab)."""
    return REPO_ROOT / "notebooks"


def replace_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` in one step, with `mode` (owner-only by default): written aside in
    the same folder, then renamed over the old file, so a reader sees the old or the new
    content, never half, and the file is never briefly open to other users."""
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(aside, mode)
        os.replace(aside, path)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise
