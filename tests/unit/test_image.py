"""The image build's argv and pip-settings plumbing, without running podman."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lab_helpers.paths import REPO_ROOT, containers_dir
from lab_helpers.server import base_image, image, pip_settings
from lab_helpers.server.podman_cli import shell_preview


def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == flag]


def _build_args(argv: list[str]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in _pairs(argv, "--build-arg"))


@pytest.fixture
def fake_pip(tmp_path: Path) -> image.PipSettings:
    """Host-like settings: CA bundle, wheel folder, file:// index under .../simple, constraints."""
    cert = tmp_path / "ca.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (tmp_path / "mirror" / "simple").mkdir(parents=True)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14.1\n")
    cache = tmp_path / "pip-cache"
    cache.mkdir()
    items = [
        ("global.cert", str(cert)),
        ("global.find-links", f"{wheels} {tmp_path / 'missing-wheels'}"),
        ("global.extra-index-url", f"file://{tmp_path}/mirror/simple https://example.org/simple"),
        ("global.constraint", str(constraints)),
        ("global.default-timeout", "60"),
        ("install.default-timeout", "90"),
    ]
    return image.PipSettings(**{**image.parse_pip_config(items).__dict__, "cache_dir": str(cache)})


def test_parse_pip_config_precedence_and_missing_paths(tmp_path: Path) -> None:
    items = [
        (":env:.cert", "/nonexistent/ca.crt"),
        ("global.cert", os.__file__),
        (":env:.find-links", str(tmp_path)),
        ("global.find-links", "/also/missing"),
        ("global.index-url", "https://mirror.example/simple"),
        ("garbage", "line"),
        ("download.cert", "/ignored"),
    ]
    settings = image.parse_pip_config(items)
    # :env: wins over global, but a cert that does not exist is dropped rather than mounted.
    assert settings.cert is None
    assert settings.find_links == (str(tmp_path),)
    assert settings.index_url == "https://mirror.example/simple"
    assert image.parse_pip_config([]) == image.PipSettings()


def test_fake_settings_args_and_mounts(fake_pip: image.PipSettings, tmp_path: Path) -> None:
    assert fake_pip.default_timeout == "90"  # [install] beats [global]
    assert fake_pip.find_links == (str(tmp_path / "wheels"),)
    args = fake_pip.build_args()
    assert args["PIP_CERT"] == str(tmp_path / "ca.crt")
    assert args["PIP_EXTRA_INDEX_URL"].split() == [
        f"file://{tmp_path}/mirror/simple", "https://example.org/simple"
    ]
    assert args["PIP_CACHE_DIR"] == pip_settings.PIP_CACHE_IN_BUILD
    mounts = {src: (dst, mode) for src, dst, mode in fake_pip.mounts()}
    # The index is mounted from the parent of /simple: its pages link to ../../files/.
    assert str(tmp_path / "mirror") in mounts
    assert mounts[str(tmp_path / "pip-cache")] == (pip_settings.PIP_CACHE_IN_BUILD, "rw")
    for src, (dst, mode) in mounts.items():
        assert os.path.exists(src)
        if mode == "ro":
            assert dst == src


def test_build_command_structure(fake_pip: image.PipSettings) -> None:
    argv = image.build_command(base_image=image.BASE_IMAGE_OFFLINE, pip=fake_pip)
    assert os.path.basename(argv[0]) == "podman" and argv[1] == "build"
    assert argv[argv.index("--network") + 1] == "host"
    assert _pairs(argv, "--file") == [str(containers_dir() / "Containerfile")]
    assert Path(_pairs(argv, "--file")[0]).is_file()
    assert argv[-1] == str(containers_dir())
    assert _pairs(argv, "--tag") == [image.CPU_IMAGE]
    args = _build_args(argv)
    assert args["BASE_IMAGE"] == image.BASE_IMAGE_OFFLINE
    assert args["VLLM_VERSION"] == image.VLLM_VERSION
    assert args["WITH_COMPILER"] == "0"
    assert args["PIP_FIND_LINKS"] == fake_pip.build_args()["PIP_FIND_LINKS"]
    volumes = _pairs(argv, "--volume")
    assert len(volumes) == len(fake_pip.mounts()) >= 4
    for volume in volumes:
        src, _dst, mode = volume.split(":")
        assert os.path.exists(src) and mode in ("ro", "rw")
    labels = dict(label.split("=", 1) for label in _pairs(argv, "--label"))
    assert labels[image.LABEL_RECIPE] == image.recipe_hash(False)
    assert "--no-cache" not in argv
    assert "--no-cache" in image.build_command(pip=fake_pip, no_cache=True)
    assert shell_preview(argv).startswith("CONTAINERS_CONF=")


def test_compiler_variant_changes_tag_arg_and_recipe(fake_pip: image.PipSettings) -> None:
    plain = image.build_command(pip=fake_pip)
    compile_ = image.build_command(compiler=True, pip=fake_pip)
    assert _pairs(compile_, "--tag") == [image.COMPILE_IMAGE] != _pairs(plain, "--tag")
    assert _build_args(compile_)["WITH_COMPILER"] == "1"
    assert image.recipe_hash(True) != image.recipe_hash(False)
    assert _build_args(plain)["BASE_IMAGE"] == image.BASE_IMAGE_PUBLIC


def test_image_names_follow_the_vllm_version() -> None:
    assert image.CPU_IMAGE.endswith(f":{image.VLLM_VERSION}")
    assert image.COMPILE_IMAGE == f"{image.CPU_IMAGE}-compile"
    assert image.GPU_IMAGE.endswith(f":v{image.VLLM_VERSION}")
    text = (containers_dir() / "Containerfile").read_text()
    assert f"ARG VLLM_VERSION={image.VLLM_VERSION}" in text
    assert '"-m", "vllm.entrypoints.openai.api_server"' in text


def test_empty_settings_keep_containerfile_defaults() -> None:
    argv = image.build_command(pip=image.PipSettings())
    assert "--volume" not in argv
    assert not any(a.startswith("PIP_") for a in _pairs(argv, "--build-arg"))


def test_host_pip_settings_mounts_exist() -> None:
    """The real host config: whatever it names must exist, or the build's mounts would fail."""
    settings = image.host_pip_settings()
    for src, _dst, _mode in settings.mounts():
        if src != settings.cache_dir:  # created by build_image() before building
            assert os.path.exists(src), src


def test_base_image_commands_preview() -> None:
    lines = image.base_image_commands("/var/tmp/x")
    assert lines[0].startswith("debootstrap --variant=minbase --include=")
    assert "libnuma1" in lines[0] and "python3-venv" in lines[0]
    assert image.BASE_IMAGE_OFFLINE in lines[2] and "podman import" in lines[2]
    assert not any(str(REPO_ROOT) in line.split()[-1] for line in lines[:2])


def test_debian_mirror_is_a_url() -> None:
    assert base_image.debian_mirror().startswith(("http://", "https://", "file:"))
