"""An attendee joins a real room: one of the test lab's shared chat servers is the room's (no
start of its own; the local-process one when nbval's notebooks use Podman, so modules 2-4 run
under both runtimes), and a second lab home beside it is the attendee's lab.

In the attendee's lab, after `vllm-lab join alice.json`: `server.start(chat_server(...))`
returns the room's server (nothing starts there) and says so, a chat answers with alice's key,
stopping it leaves it running, module 5 refuses to benchmark it (the instructor did not allow
it) and its start cell starts a server of the attendee's own instead, and once the instructor
revokes alice the next request and the next start fail with the fix (ask for a new key). The
core paths of modules 2, 3 and 4 then run unchanged in a joined lab, every request counted
under the attendee's name.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from lab_helpers import bench, server
from lab_helpers.chat import ChatSession
from lab_helpers.cli import main
from lab_helpers.cli.doctor import room_checks
from lab_helpers.connect import KeyRejected
from lab_helpers.metrics.room import room_usage
from lab_helpers.paths import REPO_ROOT, lab_home, port_base
from lab_helpers.server import room
from lab_helpers.server.config import chat_server
from lab_helpers.server.room_join import RoomKeyRefused
from lab_helpers.server.room_settings import benchmark_refusal, joined_room, room_key_file
from tests.notebook_agenda import core_cells

pytestmark = pytest.mark.integration

# The modules that must work unchanged against a room's server (module 1 connects to it
# instead of starting one: test_an_attendee_uses_the_rooms_server; module 5 benchmarks only
# with the instructor's permission).
JOINED_MODULES = ("02_structured_outputs.ipynb", "03_tool_calling.ipynb", "04_mcp_agents.ipynb")


@pytest.fixture(scope="module")
def host(request):
    """The room: when the notebooks under nbval use Podman, the shared local-process chat
    server ("chat-local"), so the core paths of modules 2-4 below run against the other
    runtime too; when they run as local processes (no Podman), the shared chat server itself.
    With attendee keys, removed at the end."""
    default, _why = server.choose_runtime(chat_server("cpu"))
    srv = request.getfixturevalue("local_chat_srv" if default == "podman" else "chat_srv")
    yield srv
    room.clear_room(srv.name)


@pytest.fixture(scope="module")
def attendee_home() -> Path:
    """A second lab home (its own servers and settings; the prepared models linked)."""
    home = Path(str(lab_home()) + "-attendee")
    home.mkdir(exist_ok=True)
    models = home / "models"
    if not models.exists():
        models.symlink_to(lab_home() / "models", target_is_directory=True)
    return home


@contextlib.contextmanager
def in_lab(home: Path, base: int) -> Iterator[None]:
    """Run the block as that lab (its home and ports), then back to the test lab."""
    saved = {k: os.environ.get(k) for k in ("VLLM_LAB_HOME", "VLLM_LAB_PORT_BASE")}
    os.environ.update(VLLM_LAB_HOME=str(home), VLLM_LAB_PORT_BASE=str(base))
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ[key] = value  # type: ignore[assignment]


def join_file(host_srv, name: str) -> Path:
    room.add_attendee(host_srv.name, name)
    room.write_join_sheet(host_srv.name, host_srv.base_url)
    return room.room_dir(host_srv.name) / room.JOINS_DIR / f"{name}.json"


def test_an_attendee_uses_the_rooms_server(host, attendee_home, capsys):
    alice = join_file(host, "alice")
    key = room.attendees(host.name)["alice"]
    attendee_base = port_base() + 200
    with in_lab(attendee_home, attendee_base):
        assert main(["join", str(alice)]) == 0
        out = capsys.readouterr().out
        assert "joined the room" in out and "not allowed" in out and key not in out
        assert "was stopped" not in out  # this lab had no server of its own to stop
        assert joined_room() is not None and room_key_file().read_text().strip() == key
        assert oct(room_key_file().stat().st_mode & 0o777) == "0o600"

        srv = server.start(chat_server("cpu"))
        said = capsys.readouterr().out
        assert "room's server" in said and "nothing was started" in said
        assert srv.runtime.kind == "room" and srv.base_url == host.base_url
        assert srv.model_name == host.model_name and srv.api_key == key
        assert server.get("chat").base_url == host.base_url  # by name, as modules 2-4 do
        chat = ChatSession(srv, max_tokens=8, temperature=0)
        assert "".join(chat.send("Say hi.")).strip()
        assert "room" in repr(srv) and key not in repr(srv)

        srv.stop()  # from the attendee's side: only says so
        assert "keeps running" in capsys.readouterr().out
        assert host.health()

        target = bench.Target.from_server(srv)
        with pytest.raises(bench.BenchError, match="room's server") as refused:
            bench.run_benchmark(target, bench.concurrent([1], max_requests=1))
        assert "slow" in refused.value.cause and "vllm-lab room benchmarks on" in refused.value.fix
        assert [c.ok for c in room_checks()] == [True]

        # Module 5's start cell, as the attendee runs it: a server of their own to benchmark.
        module5 = nbformat.read(REPO_ROOT / "notebooks" / "05_benchmark.ipynb", as_version=4)
        cells = [c.source for c in module5.cells if c.cell_type == "code"]
        start_cell = next(c for c in cells if "benchmark_refusal(srv.base_url)" in c)
        names: dict = {}
        for source in (cells[0], next(c for c in cells if c.startswith("PROFILE")), start_cell):
            exec(source, names)  # noqa: S102 - the notebook's own cells
        own = names["srv"]
        try:
            assert own.name == "my-chat" and own.runtime.kind != "room"
            assert own.base_url != host.base_url and benchmark_refusal(own.base_url) is None
            assert names["target"].api_key == own.api_key != key
        finally:
            own.stop()
        assert host.health()

    room.revoke_attendee(host.name, "alice")  # the instructor's side
    with in_lab(attendee_home, attendee_base):
        with pytest.raises(KeyRejected) as revoked:
            "".join(chat.send("Still there?"))
        assert "room add alice" in revoked.value.fix
        with pytest.raises(RoomKeyRefused) as again:
            server.start(chat_server("cpu"))
        assert "room add alice" in again.value.fix and "join again" in again.value.fix
        check = room_checks()[0]
        assert not check.ok and "room add alice" in check.fix
        assert main(["join", "--leave"]) == 0
        assert joined_room() is None and not room_key_file().exists()
        assert server.choose_runtime(chat_server("cpu"))[0] != "room"
    assert host.health()


def room_requests(host_srv, name: str) -> int:
    """The requests the room's server counted for `name` (its /metrics, read with its key)."""
    usage = room_usage(host_srv).get(name)
    return usage.requests if usage else 0


def core_path(notebook: Path, into: Path) -> tuple[Path, int]:
    """A copy of a module with only its core cells (what a room does in the workshop's 90
    minutes; tests/unit/test_agenda.py checks the core never needs an optional cell), and how
    many code cells it has."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [nb.cells[i] for i in core_cells(nb)]
    copy = into / notebook.name
    nbformat.write(nb, copy)
    return copy, sum(c.cell_type == "code" for c in nb.cells)


@pytest.mark.timeout(3600)  # three modules, on a machine shared with other runs
def test_modules_2_to_4_run_unchanged_in_a_joined_lab(host, attendee_home):
    """The core paths of modules 2, 3 and 4, as shipped, in the attendee's lab joined as bob:
    structured outputs, tool calls and MCP tools against the room's server, with the tools,
    the ACME database, the MCP servers and the approval gate on the attendee's side."""
    bob = join_file(host, "bob")
    env = {**os.environ, "VLLM_LAB_TEST_HOME": str(attendee_home),
           "VLLM_LAB_TEST_PORT_BASE": str(port_base() + 200)}
    joined = subprocess.run([sys.executable, "-m", "lab_helpers.cli", "join", str(bob)],
                            env={**env, "VLLM_LAB_HOME": str(attendee_home)}, text=True,
                            capture_output=True, timeout=120, check=False)
    assert joined.returncode == 0, joined.stderr
    requests_before = room_requests(host, "bob")
    try:
        # The copies live in the repository (a hidden folder pytest does not collect), so the
        # repository's conftest.py sets up the attendee's lab for them as for the notebooks.
        with tempfile.TemporaryDirectory(dir=REPO_ROOT, prefix=".joined-core-") as folder:
            copies = [core_path(REPO_ROOT / "notebooks" / name, Path(folder))
                      for name in JOINED_MODULES]
            run = subprocess.run(
                [sys.executable, "-m", "pytest", *(str(copy) for copy, _ in copies),
                 "--nbval-lax", "--nbval-cell-timeout=900", "-p", "no:cacheprovider", "-q"],
                cwd=REPO_ROOT, env=env, text=True, capture_output=True, timeout=3000,
                check=False)
        assert run.returncode == 0, run.stdout[-4000:]
        assert f"{sum(cells for _, cells in copies)} passed" in run.stdout
        assert room.attendees(host.name)["bob"] not in run.stdout + run.stderr
        # Every module's requests went to the room under bob's name (the server's own count).
        assert room_requests(host, "bob") > requests_before
    finally:
        subprocess.run([sys.executable, "-m", "lab_helpers.cli", "join", "--leave"],
                       env={**env, "VLLM_LAB_HOME": str(attendee_home)}, timeout=120,
                       check=False, capture_output=True)
    with in_lab(attendee_home, port_base() + 200):
        assert server.list_servers() == []  # the module started nothing of its own
    assert host.health()
