"""How the local runtime sees processes (psutil): a session's live members, and whether a
recorded pid still runs the lab's launcher. Real processes, started and killed here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from lab_helpers.server.checks import mem_available_bytes
from lab_helpers.server.local import _pid_alive, session_members


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_sessions_members_and_its_end():
    leader = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; "
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
         "time.sleep(60)"], start_new_session=True)
    try:
        assert _wait_for(lambda: len(session_members(leader.pid)) == 2)
        assert leader.pid in session_members(leader.pid)
        assert os.getpid() not in session_members(leader.pid)
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
    # The leader is a zombie until reaped (and its child is re-parented, then killed):
    # zombies do not count as members.
    assert _wait_for(lambda: session_members(leader.pid) == [])
    leader.wait()


def test_a_pid_counts_only_while_it_runs_the_launcher():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not _pid_alive(sleeper.pid)  # alive, but not the lab's launcher: a recycled pid
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not _pid_alive(sleeper.pid)


def test_available_memory_is_the_kernels_figure():
    with open("/proc/meminfo") as meminfo:
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    assert abs(mem_available_bytes() - kib * 1024) < 256 * 1024**2  # read moments apart
