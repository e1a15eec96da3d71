"""Room mode: one server, a key per attendee, added and revoked while it runs.

Every lab server's launcher (keyguard.py) also accepts the keys in its room file,
`<lab home>/servers/<name>.room/keys.json` (JSON `{"attendees": {"name": "key"}}`, 0600 in a
0700 folder), read again whenever the file changes: adding or revoking an attendee takes effect
on the next request, without a restart. A Podman server sees the folder (not the file: a
replaced file would stay the old one behind a file mount) read-only at ROOM_MOUNT.

    ensure_attendees("chat", 12)    # attendee-01 ... attendee-12, existing keys kept
    add_attendee("chat", "alice")   # -> alice's new key
    revoke_attendee("chat", "alice")
    attendees("chat")               # -> {"bob": "lab-..."}
    set_allow_benchmarks("chat", True)   # recorded in every attendee's join file

The join sheet (join.csv, join.html) and one join file per attendee (joins/<name>.json, what
`vllm-lab join FILE` reads on the attendee's machine) are written beside the room file, 0600.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import secrets
from pathlib import Path

from ..errors import LabError
from ..paths import replace_file, servers_dir

ROOM_MOUNT = "/run/lab-room"
KEYS_NAME = "keys.json"
OPTIONS_NAME = "options.json"
JOINS_DIR = "joins"
ATTENDEE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


class RoomError(LabError, ValueError):
    """A room request that cannot be carried out (a bad name, an unknown attendee)."""


def room_dir(server_name: str) -> Path:
    """The server's room folder (made 0700 if missing): the launcher watches the file in it."""
    path = servers_dir() / f"{server_name}.room"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


def keys_path(server_name: str) -> Path:
    return room_dir(server_name) / KEYS_NAME


def attendees(server_name: str) -> dict[str, str]:
    """name -> key of the server's attendees ({} when the room has none)."""
    path = keys_path(server_name)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        found = data["attendees"]
        assert isinstance(found, dict)
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise RoomError(f"The room file {path} cannot be read ({exc}).",
                        cause="it was edited by hand or cut short",
                        fix=f"rm {path}   (then add the attendees again, e.g. "
                        "vllm-lab room add alice)") from exc
    return {str(k): str(v) for k, v in found.items()}


def _write(server_name: str, found: dict[str, str]) -> None:
    """Replace the file in one step (a reader sees the old or the new list, never half)."""
    replace_file(room_dir(server_name) / KEYS_NAME,
                 json.dumps({"attendees": found}, indent=1, sort_keys=True))


def check_name(name: str) -> str:
    if not ATTENDEE_NAME.fullmatch(name):
        raise RoomError(f"{name!r} is not a usable attendee name.",
                        cause="names go into metrics labels and file names",
                        fix="use 1-40 letters, digits, '.', '_' or '-', starting with a letter "
                        "or digit, e.g. vllm-lab room add alice")
    return name


def _new_key() -> str:
    return "room-" + secrets.token_urlsafe(24)


def add_attendee(server_name: str, name: str) -> str:
    """A new key for `name` (replacing an earlier one of the same name); returns it."""
    found = attendees(server_name)
    found[check_name(name)] = _new_key()
    _write(server_name, found)
    return found[name]


def ensure_attendees(server_name: str, count: int, prefix: str = "attendee") -> dict[str, str]:
    """Keys for `prefix-01` ... `prefix-NN` (existing ones are kept); all attendees' keys."""
    found = attendees(server_name)
    missing = [f"{prefix}-{n:02d}" for n in range(1, count + 1)
               if f"{prefix}-{n:02d}" not in found]
    for name in missing:
        found[check_name(name)] = _new_key()
    if missing:
        _write(server_name, found)
    return found


def revoke_attendee(server_name: str, name: str) -> None:
    """`name`'s key stops working at their next request."""
    found = attendees(server_name)
    if name not in found:
        raise RoomError(f"No attendee {name!r} in the room of server {server_name!r}.",
                        fix=f"vllm-lab room status   (lists the attendees of {server_name!r})")
    del found[name]
    _write(server_name, found)


def clear_room(server_name: str) -> None:
    """No attendees any more (the room file, the options, the join sheet and files removed)."""
    folder = room_dir(server_name)
    for name in (KEYS_NAME, OPTIONS_NAME, "join.csv", "join.html"):
        (folder / name).unlink(missing_ok=True)
    for path in (folder / JOINS_DIR).glob("*.json"):
        path.unlink()


def allow_benchmarks(server_name: str) -> bool:
    """Did the instructor allow attendees to benchmark the room's server (off by default:
    a benchmark slows every attendee's answers)?"""
    path = room_dir(server_name) / OPTIONS_NAME
    try:
        return bool(json.loads(path.read_text()).get("allow_benchmarks")) if path.exists() \
            else False
    except (ValueError, AttributeError):
        return False


def set_allow_benchmarks(server_name: str, allowed: bool) -> None:
    """Recorded for the join files, and enforced by the server's launcher from its next
    request: without it an attendee runs at most room_guard.ATTENDEE_IN_FLIGHT requests at
    once."""
    replace_file(room_dir(server_name) / OPTIONS_NAME,
                 json.dumps({"allow_benchmarks": allowed}) + "\n")


def join_lines(server_name: str, base_url: str) -> list[dict[str, str]]:
    """One row per attendee: name, the server's OpenAI base URL, their key, and whether
    benchmarks are allowed ("yes"/"no")."""
    bench = "yes" if allow_benchmarks(server_name) else "no"
    return [{"name": name, "url": f"{base_url}/v1", "key": key, "benchmarks": bench}
            for name, key in sorted(attendees(server_name).items())]


def _write_private(path: Path, content: str) -> Path:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(content)
    return path


def write_join_files(server_name: str, base_url: str) -> Path:
    """joins/<name>.json per attendee (0600, in a 0700 folder): the file `vllm-lab join`
    reads. Files of revoked attendees are removed. Returns the folder."""
    folder = room_dir(server_name) / JOINS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    rows = join_lines(server_name, base_url)
    for old in folder.glob("*.json"):
        if old.stem not in {r["name"] for r in rows}:
            old.unlink()
    for r in rows:
        _write_private(folder / f"{r['name']}.json", json.dumps(
            {"vllm_lab_room": 1, "name": r["name"], "url": r["url"], "key": r["key"],
             "allow_benchmarks": r["benchmarks"] == "yes"}, indent=1) + "\n")
    return folder


def write_join_sheet(server_name: str, base_url: str) -> tuple[Path, Path]:
    """join.csv and join.html (printable) beside the room file, 0600: the only files besides
    it that hold the keys."""
    rows = join_lines(server_name, base_url)
    folder = room_dir(server_name)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["name", "url", "key", "benchmarks"])
    writer.writeheader()
    writer.writerows(rows)
    cells = "\n".join(
        f"<tr><td>{html.escape(r['name'])}</td><td><code>{html.escape(r['url'])}</code></td>"
        f"<td><code>{html.escape(r['key'])}</code></td></tr>" for r in rows)
    page = (
        "<!doctype html><meta charset='utf-8'><title>vLLM Lab: join the room</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #999;padding:.4em .8em}"
        "table{border-collapse:collapse}tr{page-break-inside:avoid}</style>"
        "<h1>Join the room's vLLM server</h1><p>In the lab: <code>./.venv/bin/vllm-lab join"
        "</code>, then paste your line (name, URL, key). Any OpenAI client: base URL and API "
        "key below (the key is yours alone; the instructor can revoke it).</p>"
        f"<table><tr><th>Name</th><th>Base URL</th><th>API key</th></tr>\n{cells}\n</table>")
    write_join_files(server_name, base_url)
    return (_write_private(folder / "join.csv", text.getvalue()),
            _write_private(folder / "join.html", page))
