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

Room mode (one server, a key per attendee): when `LAB_ROOM_KEYS_FILE` names a file of
attendees' keys, each attendee's key is accepted too, and their requests go through the room's
policy in `room_guard.py` beside this file (what they reach, how many at once, counted per
attendee on `/metrics`, cut when revoked).

This file and `room_guard.py` are standalone (standard library, plus prometheus_client for
room counts, which vLLM brings) because they are mounted into the container next to vLLM, where
`lab_helpers` is not installed (LAUNCHER_FILES).
"""

from __future__ import annotations

import hmac
import os
import runpy
import sys
from typing import Any

if __package__:  # imported as lab_helpers.server.keyguard
    from .room_guard import ASGIApp, RoomGuard, RoomKeys, Scope, digest, refuse
else:  # run as vLLM's launcher, or imported by vLLM as its --middleware: the folder is on the path
    from room_guard import ASGIApp, RoomGuard, RoomKeys, Scope, digest, refuse  # type: ignore[no-redef]

KEY_FILE_ENV = "LAB_API_KEY_FILE"
# What this launcher does, as a number that is part of every server's config hash: a server
# started by an older launcher (e.g. one without room keys) is replaced, not reused.
LAUNCHER_REVISION = 7
ROOM_KEYS_ENV = "LAB_ROOM_KEYS_FILE"
# The launcher's files, mounted side by side next to vLLM (Podman, Kubernetes).
LAUNCHER_FILES = ("keyguard.py", "room_guard.py")
OPEN_PATHS = frozenset({"/health"})
ENTRYPOINT = "vllm.entrypoints.openai.api_server"
MIDDLEWARE = "keyguard.KeyGuard"


class _Instructor:
    """The caller with the server's own key: not an attendee, not counted, not limited (a
    sentinel no name in the room file can equal, not even an empty one)."""


INSTRUCTOR = _Instructor()


class KeyGuard:
    """ASGI middleware: `Authorization: Bearer <key>` on every path but /health."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._key = digest(read_key(os.environ.get(KEY_FILE_ENV)))
        keys = RoomKeys(os.environ.get(ROOM_KEYS_ENV))
        self.room = RoomGuard(app, keys) if keys.path else None

    def _caller(self, token: str | None) -> str | _Instructor | None:
        """INSTRUCTOR for the server's key, an attendee's name for theirs, else None."""
        if token is None:
            return None
        if hmac.compare_digest(digest(token), self._key):
            return INSTRUCTOR
        return self.room.keys.attendee(token) if self.room else None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
        if path in OPEN_PATHS:
            return await self.app(scope, receive, send)
        token = bearer_token(scope)
        caller = self._caller(token)
        if caller == INSTRUCTOR:
            return await self.app(scope, receive, send)
        if isinstance(caller, str) and token is not None and self.room is not None:
            return await self.room.serve(caller, token, path, scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return None
        return await refuse(send, 401, UNAUTHORIZED)


UNAUTHORIZED = "Unauthorized: send Authorization: Bearer <the lab server key>"


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's `Authorization: Bearer ...` header, if it has one."""
    for name, value in scope.get("headers") or []:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
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
