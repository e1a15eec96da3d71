"""The side labs the tests use for the runtime the test lab's notebooks do not use."""

from __future__ import annotations

from pathlib import Path

from tests.side_labs import (
    default_runtime,
    local_runtime_env,
    other_runtime,
    podman_runtime_env,
    side_lab_env,
)


def _lab(tmp_path: Path, name: str, port_base: int) -> dict[str, str]:
    home = tmp_path / name
    return {"VLLM_LAB_HOME": str(home), "VLLM_LAB_PORT_BASE": str(port_base)}


def test_a_side_lab_has_its_own_home_and_ports_and_the_shared_models(tmp_path):
    real_models = tmp_path / "real-models"
    (real_models / "smol").mkdir(parents=True)
    test_lab = _lab(tmp_path, "lab-test", 18000)
    Path(test_lab["VLLM_LAB_HOME"]).mkdir()
    (Path(test_lab["VLLM_LAB_HOME"]) / "models").symlink_to(real_models)

    local = local_runtime_env(test_lab)
    podman = podman_runtime_env(test_lab)

    assert local["VLLM_LAB_HOME"] == test_lab["VLLM_LAB_HOME"] + "-local-runtime"
    assert podman["VLLM_LAB_HOME"] == test_lab["VLLM_LAB_HOME"] + "-podman-runtime"
    assert (local["VLLM_LAB_RUNTIME"], podman["VLLM_LAB_RUNTIME"]) == ("local", "podman")
    ports = {int(env["VLLM_LAB_PORT_BASE"]) for env in (test_lab, local, podman)}
    assert len(ports) == 3 and min(ports) == 18000
    for env in (local, podman):
        # a pytest run in the side lab (nbval) keeps to it
        assert env["VLLM_LAB_TEST_HOME"] == env["VLLM_LAB_HOME"]
        assert env["VLLM_LAB_TEST_PORT_BASE"] == env["VLLM_LAB_PORT_BASE"]
        # Podman mounts the models: the link goes to the real folder, not to another link
        link = Path(env["VLLM_LAB_HOME"]) / "models"
        assert link.is_symlink() and Path(link.readlink()) == real_models.resolve()


def test_a_side_lab_beside_a_side_lab_is_a_lab_of_its_own(tmp_path):
    test_lab = _lab(tmp_path, "lab-test", 18000)
    other = side_lab_env("-other-runtime", 300, "local", test_lab)
    nested = podman_runtime_env(other)
    homes = {env["VLLM_LAB_HOME"] for env in (test_lab, other, nested)}
    ports = {env["VLLM_LAB_PORT_BASE"] for env in (test_lab, other, nested)}
    assert len(homes) == 3 and len(ports) == 3
    assert (Path(nested["VLLM_LAB_HOME"]) / "models").resolve() == (
        Path(test_lab["VLLM_LAB_HOME"]) / "models").resolve()


def test_the_other_runtime_is_never_the_default_one(monkeypatch):
    for runtime in ("local", "podman"):
        monkeypatch.setenv("VLLM_LAB_RUNTIME", runtime)
        other, why = other_runtime()
        assert other != default_runtime(), why
        if default_runtime() == "podman":
            assert other == "local"
