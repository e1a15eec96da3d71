"""BackoffPoller, ServerPanel's headless part: fast after a change, slower while idle."""

from __future__ import annotations

import threading
import time

import pytest

from lab_helpers.widgets.polling import BackoffPoller


def test_the_delay_doubles_while_idle_and_resets_on_a_change():
    poller = BackoffPoller(lambda: False, interval=1.0, max_interval=5.0)
    assert [poller.step(False) for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]
    assert poller.step(True) == 1.0


def test_busy_keeps_it_fast():
    moving = {"now": True}
    poller = BackoffPoller(lambda: False, busy=lambda: moving["now"], interval=1.0,
                           max_interval=8.0)
    assert poller.step(False) == 1.0
    moving["now"] = False
    assert poller.step(False) == 2.0


def test_the_thread_polls_survives_errors_and_stops():
    calls, errors = [], []
    seen = threading.Event()

    def refresh() -> bool:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("podman ps failed")
        if len(calls) >= 4:
            seen.set()
        return False

    poller = BackoffPoller(refresh, interval=0.01, max_interval=0.02, on_error=errors.append)
    poller.start()
    try:
        assert seen.wait(5)
        assert poller.running
        assert [type(e) for e in errors] == [RuntimeError]
    finally:
        poller.stop()
    assert not poller.running
    stopped_at = len(calls)
    time.sleep(0.1)
    assert len(calls) == stopped_at


def test_poke_polls_at_once():
    seen = threading.Event()
    poller = BackoffPoller(lambda: seen.set() or False, interval=60.0)
    poller.start()
    try:
        assert not seen.wait(0.2)  # the first poll is a minute away
        poller.poke()
        assert seen.wait(5)
    finally:
        poller.stop()


def test_a_zero_interval_is_refused():
    with pytest.raises(ValueError):
        BackoffPoller(lambda: False, interval=0)
