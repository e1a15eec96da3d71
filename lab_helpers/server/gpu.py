"""Is there an NVIDIA GPU that vLLM (and Podman, through CDI) can use?"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import GPUUnavailable

CDI_SPECS = (Path("/etc/cdi"), Path("/var/run/cdi"))


def gpu_status() -> tuple[bool, str]:
    """(usable, description). Needs nvidia-smi to list at least one GPU."""
    if shutil.which("nvidia-smi") is None:
        return False, "no NVIDIA driver (nvidia-smi not found)"
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"nvidia-smi failed: {exc}"
    gpus = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not gpus:
        return False, f"nvidia-smi found no GPU: {proc.stderr.strip()[-200:]}"
    return True, "; ".join(gpus)


def cdi_ready() -> bool:
    """Podman's `--device nvidia.com/gpu=all` needs a CDI spec from the NVIDIA Container Toolkit."""
    return any(d.is_dir() and any(d.glob("nvidia*.yaml")) for d in CDI_SPECS)


def require_gpu() -> None:
    ok, reason = gpu_status()
    if not ok:
        raise GPUUnavailable(
            "The gpu profile needs an NVIDIA GPU, and this machine has none usable.",
            cause=reason,
            fix="use the cpu profile (chat_server('cpu'), `vllm-lab up --profile cpu`), "
            "or run on a GPU host with the NVIDIA driver and Container Toolkit installed",
        )
