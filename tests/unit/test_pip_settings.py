"""The host's pip settings are read from pip's own files and PIP_* variables, with pip's precedence.

Every test builds its own files under tmp_path and points pip's locations there, so the host's
real /etc/pip.conf, ~/.config/pip and PIP_* variables take no part.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lab_helpers.server import pip_settings
from lab_helpers.server.pip_settings import (
    host_pip_settings,
    parse_pip_config,
    pip_cache_dir,
    pip_config_files,
    pip_config_items,
)


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """pip's locations, moved under tmp_path; no PIP_* or XDG_* variable set."""
    for key in list(os.environ):
        if key.startswith(("PIP_", "XDG_")):
            monkeypatch.delenv(key)
    paths = {"etc": tmp_path / "etc" / "pip.conf", "xdg1": tmp_path / "xdg1" / "pip" / "pip.conf",
             "xdg2": tmp_path / "xdg2" / "pip" / "pip.conf",
             "legacy": tmp_path / "home" / ".pip" / "pip.conf",
             "user": tmp_path / "home" / ".config" / "pip" / "pip.conf",
             "site": tmp_path / "venv" / "pip.conf", "file": tmp_path / "my-pip.conf"}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(pip_settings, "ETC_PIP_CONF", str(paths["etc"]))
    monkeypatch.setenv("XDG_CONFIG_DIRS", f"{tmp_path / 'xdg1'}{os.pathsep}{tmp_path / 'xdg2'}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    return paths


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_the_files_pip_reads_in_pips_order(where: dict[str, Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    everyday = [where[k] for k in ("xdg1", "xdg2", "etc", "legacy", "user", "site")]
    assert pip_config_files() == [str(p) for p in everyday]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(where["file"].parent / "cfg"))
    assert pip_config_files()[4] == str(where["file"].parent / "cfg" / "pip" / "pip.conf")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    # PIP_CONFIG_FILE comes last; when it exists, pip skips the user's files.
    monkeypatch.setenv("PIP_CONFIG_FILE", str(where["file"]))
    assert pip_config_files() == [*map(str, everyday), str(where["file"])]
    write(where["file"], "[global]\n")
    assert pip_config_files() == [str(where[k]) for k in ("xdg1", "xdg2", "etc", "site", "file")]
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert pip_config_files() == []


def test_later_files_then_sections_then_variables_win(where: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def index() -> str | None:
        return host_pip_settings().index_url

    assert index() is None
    write(where["xdg1"], "[global]\nindex-url = https://xdg1.example/simple\n")
    assert index() == "https://xdg1.example/simple"
    write(where["etc"], "[global]\nindex-url = https://etc.example/simple\n")
    assert index() == "https://etc.example/simple"
    write(where["legacy"], "[global]\nindex-url = https://legacy.example/simple\n")
    assert index() == "https://legacy.example/simple"
    write(where["user"], "[global]\nindex_url = https://user.example/simple\n")  # _ as -
    assert index() == "https://user.example/simple"
    write(where["site"], "[global]\nindex-url = https://site.example/simple\n")
    assert index() == "https://site.example/simple"
    write(where["file"], "[global]\nindex-url = https://file.example/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(where["file"]))
    assert index() == "https://file.example/simple"
    # [install] beats [global] wherever it is; PIP_* beats both.
    write(where["etc"], "[install]\nindex-url = https://install.example/simple\n")
    assert index() == "https://install.example/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    assert index() == "https://env.example/simple"
    assert (":env:.index-url", "https://env.example/simple") in pip_config_items()


def test_empty_values_reset_within_a_section_only(where: dict[str, Path]) -> None:
    cert = where["etc"].parent / "ca.crt"
    write(cert, "-----BEGIN CERTIFICATE-----\n")
    write(where["etc"], f"[global]\ncert = {cert}\nfind-links = {where['etc'].parent}\n")
    write(where["user"], "[global]\nfind-links =\n[install]\ncert =\n")
    settings = host_pip_settings()
    assert settings.find_links == ()  # the user's empty value takes the global one back
    assert settings.cert == str(cert)  # an empty [install] value does not hide [global]


def test_variables_and_their_names(where: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", f"{where['etc'].parent} /no/such/folder")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://a.example/simple https://b.example/simple")
    monkeypatch.setenv("PIP_CONSTRAINT", "/no/such/constraints.txt")
    monkeypatch.setenv("PIP_TIMEOUT", "42")
    settings = host_pip_settings()
    assert settings.find_links == (str(where["etc"].parent),)  # a missing folder is not mounted
    assert settings.extra_index_urls == ("https://a.example/simple", "https://b.example/simple")
    assert settings.constraints == ()
    assert settings.default_timeout == "42"
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "7")
    assert host_pip_settings().default_timeout == "7"


def test_cache_dir_as_pip_cache_dir_names_it(where: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    home = where["user"].parents[2]
    assert host_pip_settings().cache_dir == str(home / ".cache" / "pip")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg-cache"))
    assert host_pip_settings().cache_dir == str(home / "xdg-cache" / "pip")
    write(where["user"], "[global]\ncache-dir = ~/pip-cache/../wheels-cache\n")
    assert host_pip_settings().cache_dir == str(home / "wheels-cache")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "false")  # pip: any value turns the cache off
    assert host_pip_settings().cache_dir is None
    assert pip_cache_dir([("global.no-cache-dir", "1")]) is None


def test_a_file_pip_cannot_read_is_skipped(where: dict[str, Path]) -> None:
    write(where["etc"], "index-url = https://no-section.example/simple\n")
    write(where["site"], "[global]\nindex-url = https://site.example/simple\n")
    assert host_pip_settings().index_url == "https://site.example/simple"
    assert parse_pip_config(pip_config_items()).index_url == "https://site.example/simple"
