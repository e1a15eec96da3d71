"""A running lab server as the rest of the lab sees it: its record (`ServerInfo`, what a runtime
reports) and its handle (`Server`: health, logs, a plain openai client, stop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from .config import ServerConfig
from .keys import key_file, read_api_key

if TYPE_CHECKING:
    from .base import Runtime


@dataclass(frozen=True)
class ServerInfo:
    """A lab server as a runtime sees it (no API key: that stays in its key file)."""

    name: str
    runtime: str
    state: str
    """'running', or what the runtime reports otherwise ('exited', 'dead', ...)."""
    host: str
    port: int
    model_name: str
    config_hash: str
    ident: str
    """Container id or process id."""
    started: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def check_health(base_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class Server:
    """A handle on one running lab server: health, logs, an OpenAI client, stop.

    As a context manager it stops the server on exit (tests, benchmarks). Servers started
    from notebooks outlive the kernel on purpose: the next module reuses them in a second.
    """

    def __init__(self, runtime: Runtime, info: ServerInfo, *, config: ServerConfig | None = None,
                 reused: bool = False, startup_seconds: float | None = None) -> None:
        self.runtime = runtime
        self.info = info
        self.config = config
        self.reused = reused
        self.startup_seconds = startup_seconds

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def base_url(self) -> str:
        return self.info.base_url

    @property
    def model_name(self) -> str:
        return self.info.model_name

    @property
    def api_key(self) -> str:
        return read_api_key(self.name) or ""

    @property
    def key_file(self) -> Path:
        """The file holding the API key (owner-only): what a shell command reads the key from."""
        return key_file(self.name)

    def health(self) -> bool:
        return check_health(self.base_url)

    def logs(self, tail: int = 100) -> str:
        return self.runtime.logs(self.name, tail=tail)

    def follow_logs(self, tail: int = 20) -> Iterator[str]:
        return self.runtime.follow(self.name, tail=tail)

    def equivalents(self) -> dict[str, str]:
        """The plain terminal commands for this server (podman ..., or ps/tail/kill)."""
        commands = self.runtime.equivalents(self.name)
        return {what: cmd.replace("HOST:PORT", f"{self.info.host}:{self.info.port}")
                for what, cmd in commands.items()}

    def client(self, **kwargs: object):  # -> openai.OpenAI
        """The plain openai client, as a learner writes it by hand (the notebooks show it
        before the helpers). The lab's own helpers use `lab_helpers.connect` instead: the key
        re-read after a restart, the lab's timeouts, no retries, errors with their fix."""
        from openai import OpenAI

        return OpenAI(base_url=f"{self.base_url}/v1", api_key=self.api_key, **kwargs)

    def stop(self) -> None:
        self.runtime.remove(self.name)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        how = "reused" if self.reused else "started"
        secs = f" in {self.startup_seconds:.1f} s" if self.startup_seconds is not None else ""
        return (f"<Server {self.name!r} {self.runtime.kind} {self.base_url} "
                f"model={self.model_name!r} ({how}{secs})>")
