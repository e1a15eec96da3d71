"""Per-server API keys and the per-name start lock, both in the lab's servers folder (0700).

A key is generated for every start and written 0600 to `servers/<name>.key`: lab clients read
it from there, and the launcher (keyguard.py) reads it at start, so it never travels through a
command line or an environment Podman records. The key file is removed with its server.
"""

from __future__ import annotations

import contextlib
import fcntl
import secrets
from collections.abc import Iterator
from pathlib import Path

from ..paths import servers_dir
from .room_settings import room_key


def key_file(name: str) -> Path:
    return servers_dir() / f"{name}.key"


def new_api_key(name: str) -> str:
    """A fresh key per server start, stored 0600 where lab clients (and the launcher) find it."""
    key = "lab-" + secrets.token_urlsafe(24)
    path = key_file(name)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(key)
    return key


@contextlib.contextmanager
def start_lock(name: str) -> Iterator[None]:
    """One start per server name at a time, across processes (two notebooks, a CLI).

    The second caller waits here, then finds the first one's healthy server and reuses it.
    """
    path = servers_dir() / f"{name}.lock"
    with open(path, "a") as handle:
        path.chmod(0o600)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_api_key(name: str) -> str | None:
    """The server's key; for the server of a joined room, the attendee's (room_settings)."""
    joined = room_key(name)
    if joined is not None:
        return joined or None
    path = key_file(name)
    return path.read_text().strip() if path.exists() else None
