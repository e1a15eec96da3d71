"""A poller that backs off while nothing changes: the headless part of ServerPanel.

    poller = BackoffPoller(refresh, busy=lambda: False, interval=2.0, max_interval=30.0)
    poller.start()          # calls refresh() every `delay` seconds on its own thread
    poller.poke()           # poll at once, and fast again (after a click)
    poller.stop()

`refresh()` returns whether anything changed. After a change (or while `busy()` says something
is moving, e.g. a server starting), the next poll comes after `interval`; while nothing
changes the delay doubles up to `max_interval`, so an idle panel costs a `podman ps` every
30 s instead of every 2 s. A refresh that raises is handed to `on_error` and polling goes on.
No widgets here: the panel is a view on it, and tests drive it without a browser.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackoffPoller:
    def __init__(self, refresh: Callable[[], bool], *, busy: Callable[[], bool] = lambda: False,
                 interval: float = 2.0, max_interval: float = 30.0,
                 on_error: Callable[[BaseException], None] | None = None,
                 name: str = "vllm-lab-poller") -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self._refresh = refresh
        self._busy = busy
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self._on_error = on_error
        self._name = name
        self._delay = interval
        self._polls = 0
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def delay(self) -> float:
        """Seconds until the next poll."""
        return self._delay

    @property
    def polls(self) -> int:
        """How many times the thread has called refresh()."""
        return self._polls

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._halt.clear()
        self._delay = self.interval
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)
        self._thread = None

    def poke(self) -> None:
        """Poll now, and fast again."""
        self._delay = self.interval
        self._wake.set()

    def step(self, changed: bool) -> float:
        """The delay after a poll that found `changed` (the back-off rule, used by the thread)."""
        if changed or self._busy():
            self._delay = self.interval
        else:
            self._delay = min(self._delay * 2, self.max_interval)
        return self._delay

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            if self._halt.is_set():
                return
            self._polls += 1
            try:
                changed = self._refresh()
            except Exception as exc:  # noqa: BLE001 - keep polling; the owner shows it
                if self._on_error is not None:
                    self._on_error(exc)
                changed = False
            self.step(changed)
