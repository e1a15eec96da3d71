"""The lab's launcher for vLLM: the API key from a file, and a key check on every route.

    LAB_API_KEY_FILE=/path/to/chat.key python keyguard.py --model ... (vLLM's own arguments)

Why a launcher rather than `VLLM_API_KEY=... vllm serve`:
- vLLM's own key check covers only `/v1`, `/v2`, `/inference` and `/cohere`; measured on 0.32,
  `POST /invocations`, `/pooling`, `/tokenize` and `/metrics` answer without a key. `KeyGuard`
  (added with vLLM's `--middleware`) requires the key on every route except `/health`.
- The key never appears where a command or configuration is shown: not in the argv (`ps`), not
  in `podman inspect` or `podman kube generate` (only the key *file's* path is there), not in a
  preview. It is read from the file at start; a missing or empty file refuses to start, so a
  pasted preview can never start a server without a key.
- The key is in no process's environment either (`/proc/PID/environ`): `KeyGuard` reads it
  from the file itself and vLLM's own check (`VLLM_API_KEY` / `--api-key`) is not used, so
  the API server, the engine core and the worker processes it spawns never carry it.
- The file's variable is named outside the `VLLM_` prefix: vLLM warns about every `VLLM_*`
  variable it does not know.

This file is standalone (standard library plus Starlette, which vLLM brings) because it is
bind-mounted into the container next to vLLM, where `lab_helpers` is not installed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import runpy
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

KEY_FILE_ENV = "LAB_API_KEY_FILE"
OPEN_PATHS = frozenset({"/health"})
ENTRYPOINT = "vllm.entrypoints.openai.api_server"
MIDDLEWARE = "keyguard.KeyGuard"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Awaitable[None]]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class KeyGuard:
    """ASGI middleware: `Authorization: Bearer <key>` on every path but /health."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._key = _digest(read_key(os.environ.get(KEY_FILE_ENV)))

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope.get("headers") or []:
            if name.lower() == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(
                    _digest(token.strip()), self._key)
        return False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        if path in OPEN_PATHS or self._authorized(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return None
        body = b'{"error": "Unauthorized: send Authorization: Bearer <the lab server key>"}'
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
        return None


def read_key(path: str | None) -> str:
    """The key from the file, or exit with a message that says what to do."""
    if not path:
        sys.exit(f"keyguard: refusing to start vLLM without an API key: set {KEY_FILE_ENV} "
                 "to a file holding the key (the lab writes one per server in its servers/ "
                 "folder when it starts the server: vllm-lab up)")
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.read().strip()
    except OSError as exc:
        sys.exit(f"keyguard: refusing to start vLLM: cannot read the key file {path} ({exc}). "
                 "Start the server with `vllm-lab up`, which writes the key file first.")
    if not key:
        sys.exit(f"keyguard: refusing to start vLLM: the key file {path} is empty.")
    return key


def main(argv: list[str]) -> None:
    read_key(os.environ.get(KEY_FILE_ENV))  # refuse before vLLM loads anything
    os.environ.pop("VLLM_API_KEY", None)    # a key in the environment would reach every child
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    sys.argv = [ENTRYPOINT, *argv, "--middleware", MIDDLEWARE]
    runpy.run_module(ENTRYPOINT, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
