"""The real CPU image: build it (or reuse it), import vLLM inside it, and check idempotency.

The first run builds for minutes; afterwards build_image() only compares a label.
"""

from __future__ import annotations

import time

import pytest

from lab_helpers.server import image
from lab_helpers.server.podman_cli import podman_status, run_podman

pytestmark = [
    pytest.mark.podman,
    pytest.mark.timeout(3600),
    pytest.mark.skipif(not podman_status()[0], reason=f"podman unusable: {podman_status()[1]}"),
]


@pytest.fixture(scope="module")
def cpu_image() -> str:
    lines: list[str] = []
    tag = image.build_image(stream=lines.append)
    assert tag == image.CPU_IMAGE
    return tag


def test_image_imports_vllm_and_cpu_torch(cpu_image: str) -> None:
    proc = run_podman(
        "run", "--rm", "--entrypoint", "/opt/venv/bin/python", cpu_image,
        "-c", "import vllm, torch; print(vllm.__version__, torch.__version__)",
        timeout=300,
    )
    vllm_version, torch_version = proc.stdout.split()[-2:]
    assert vllm_version == image.VLLM_VERSION
    assert torch_version.endswith("+cpu"), torch_version


def test_image_metadata(cpu_image: str) -> None:
    labels = image.image_labels(cpu_image)
    assert labels[image.LABEL_RECIPE] == image.recipe_hash(False)
    assert labels["org.vllm-lab.vllm-version"] == image.VLLM_VERSION
    info = run_podman("image", "inspect", cpu_image).stdout
    assert "vllm.entrypoints.openai.api_server" in info
    assert "VLLM_CPU_KVCACHE_SPACE=1" in info and "HF_HUB_OFFLINE=1" in info


def test_second_build_is_a_fast_noop(cpu_image: str) -> None:
    lines: list[str] = []
    started = time.monotonic()
    assert image.build_image(stream=lines.append) == cpu_image
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"no-op build took {elapsed:.1f}s"
    assert any("up to date" in line for line in lines)
    assert not any(line.startswith("STEP ") for line in lines)
