"""What a learner reads during a real start (`server.start(cfg, on_log=print)`): the lab says
what it is doing from the first second, the log's quiet stretches are filled with progress,
and vLLM 0.32's known harmless lines (ulimit, Triton, the api_server deprecation) are explained
once instead of shown, while the log itself keeps every line.

The start is the session's local chat server (`local_chat_srv` in conftest.py, which then
reuses it) when it is not running yet; otherwise a server of its own, removed afterwards.
The rules per line: tests/unit/test_start_messages.py.
"""

from __future__ import annotations

import time

import pytest

from lab_helpers import server
from lab_helpers.paths import port_base
from lab_helpers.server.config import chat_server
from lab_helpers.server.startlog import HARMLESS, LAB, QUIET_S, classify

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def start():
    """(seconds after the start call, line) for every line on_log got, and the server."""
    runtime = server.get_runtime("local")
    config = chat_server("cpu", name="chat-local", port=port_base() + 10)
    own = runtime.find(config.name) is not None
    if own:  # the shared one runs already: a start needs a server of its own
        config = config.replace(name="startmsg", port=server.free_port())
    seen: list[tuple[float, str]] = []
    began = time.monotonic()
    srv = runtime.start(config, timeout=600,
                        on_log=lambda line: seen.append((time.monotonic() - began, line)))
    assert not srv.reused, "the start reused a running server: nothing was shown"
    yield seen, srv
    if own:
        runtime.remove(config.name)


def test_the_lab_speaks_first_and_last(start):
    seen, _ = start
    at, first = seen[0]
    assert first.startswith(LAB + "launching vLLM") and at < 2.0, (at, first)
    assert seen[1][1].startswith(LAB + "launched") and seen[1][0] < 5.0, seen[1]
    assert seen[-1][1].startswith(LAB + "healthy after")


def test_no_quiet_stretch_is_left_without_a_word(start):
    seen, _ = start
    gaps = [(b[0] - a[0], b[1]) for a, b in zip(seen, seen[1:], strict=False)]
    longest = max(gaps)
    # A progress line after QUIET_S s of silence, checked once a second, between health
    # checks (up to 1 s each) and runtime look-ups on a loaded 2-core machine.
    assert longest[0] < QUIET_S + 4, longest
    assert any(line.startswith(LAB) and "still" in line for _, line in seen), \
        "a start on 2 cores has quiet stretches; none was filled"


def test_known_harmless_lines_are_explained_once_and_kept_in_the_log(start):
    seen, srv = start
    log = srv.logs(tail=5000).splitlines()
    kinds_in_log = {k.kind for line in log if (k := classify(line))}
    # vLLM 0.32 on a CPU: these four are in every start's log (if one is gone, a newer vLLM
    # stopped printing it: drop it from startlog.HARMLESS).
    assert {"ulimit", "triton", "api_server", "one_process_seed"} <= kinds_in_log
    shown = [line for _, line in seen]
    assert not [line for line in shown if classify(line)], "a harmless line was shown as is"
    notes = [line for line in shown if line.startswith(LAB + "note: ")]
    whys = {k.kind: k.why.split(".")[0] for k in HARMLESS}
    for kind in kinds_in_log:
        assert sum(whys[kind].split("{")[0] in note for note in notes) == 1, kind
    # Everything else the log held by the time the server was healthy was shown, in order
    # (the log goes on after that: requests, for one).
    rest = [line for line in log if not classify(line) and not line.startswith(" ")]
    passed = [line for line in shown if not line.startswith(LAB) and not line.startswith(" ")]
    assert len(passed) > 20 and rest[:len(passed)] == passed


def test_a_learner_gets_a_working_server(start):
    _, srv = start
    assert srv.health()
