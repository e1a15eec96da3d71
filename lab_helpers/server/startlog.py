"""What a learner sees while a server starts: the lab's own progress, and vLLM's log without the
lines known to be harmless, each kind explained once in plain words.

`Runtime.start(config, on_log=print)` passes every line through a `StartView`:

    [lab] launching vLLM for smollm2-135m-instruct in a Podman container ...
    [lab] launched; vLLM loads its Python libraries first (its log is quiet for about 10 s)
    [lab] 5 s: vLLM is still loading its Python libraries
    [lab] note: vLLM says Triton is missing or disabled. ...  (once, for every Triton line)
    (APIServer pid=1) INFO ... non-default args: {...}
    ...
    [lab] healthy after 27.4 s

Nothing is dropped from the log itself (the container's log or the log file; `srv.logs()`,
`vllm-lab logs NAME`): only from what `on_log` receives. `HARMLESS` lists the lines hidden,
matched on vLLM 0.32's own words (tests/unit/test_start_messages.py holds real lines);
`classify(line)` says which kind a line is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

LAB = "[lab] "
# After this many seconds without anything shown, a progress line says the start goes on.
QUIET_S = 5.0


@dataclass(frozen=True)
class Harmless:
    """A kind of log line that looks alarming and is not, with why (shown once)."""

    kind: str
    pattern: re.Pattern[str]
    why: str
    python_warning: bool = False
    """A Python warning: its next line (the source line, indented) is hidden with it."""


HARMLESS: tuple[Harmless, ...] = (
    Harmless(
        "ulimit",
        re.compile(r"Found ulimit of (\d+) and failed to automatically increase"),
        "vLLM could not raise its limit of open files (ulimit -n) and warns about 'Too many "
        "open files'. The limit it has ({0}) is far more than a lab server uses (a few per "
        "connection), so this changes nothing here."),
    Harmless(
        "triton",
        re.compile(r"Triton is installed, but doesn't include CPU backend"
                   r"|Triton is not installed"
                   r"|requires Triton; using the V1 model runner"),
        "vLLM says Triton is missing or disabled. Triton compiles GPU kernels; on a CPU vLLM "
        "uses its own CPU kernels instead, so these lines change nothing."),
    Harmless(
        "api_server",
        re.compile(r"DeprecationWarning: .*vllm\.entrypoints\.openai\.api_server.* deprecated"),
        "vLLM calls `python -m vllm.entrypoints.openai.api_server` deprecated in favour of "
        "`vllm serve`. The lab's launcher (keyguard.py, which adds the API-key check) starts "
        "that same server; it works as before.",
        python_warning=True),
    Harmless(
        "one_process_seed",
        re.compile(r"global random seed is set to \d+\. Since VLLM_ENABLE_V1_MULTIPROCESSING "
                   r"is set to False"),
        "vLLM notes that its random seed is set in the process that started it: on CPU the "
        "lab runs the model inside vLLM's engine core process (VLLM_ENABLE_V1_MULTIPROCESSING=0 "
        "with `--distributed-executor-backend uni`: one process fewer to start), and that "
        "process is vLLM's own, so nothing else is affected."),
    Harmless(
        "torch_reduce_op",
        re.compile(r"FutureWarning: `torch\.distributed\.reduce_op` is deprecated"),
        "PyTorch warns that a name vLLM still reads will be renamed one day; nothing to do.",
        python_warning=True),
)
_SOURCE_LINE = re.compile(r"^\s+\S")  # the indented line Python prints under a warning


def classify(line: str) -> Harmless | None:
    """The kind of harmless line this is, or None for a line the learner should see."""
    return next((h for h in HARMLESS if h.pattern.search(line)), None)


class StartView:
    """Turns one start's log lines into what the learner reads, through `sink` (e.g. print).

    `progress(text)` is the lab's own line; `line(raw)` a line of vLLM's log; `tick()`, called
    while waiting, says the start goes on after `quiet_s` seconds with nothing shown.
    """

    def __init__(self, sink: Callable[[str], None], *, quiet_s: float = QUIET_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = sink
        self._clock = clock
        self._quiet_s = quiet_s
        self._began = clock()
        self._last_shown = self._began
        self._explained: set[str] = set()
        self._hide_source_line = False
        self._log_lines = 0
        self.hidden = 0
        """Lines of the log not passed on (they stay in the log)."""

    def _show(self, text: str) -> None:
        self._last_shown = self._clock()
        self._sink(text)

    def elapsed(self) -> float:
        return self._clock() - self._began

    def progress(self, text: str) -> None:
        self._show(LAB + text)

    def line(self, raw: str) -> None:
        self._log_lines += 1
        if self._hide_source_line:
            self._hide_source_line = False
            if _SOURCE_LINE.match(raw):
                self.hidden += 1
                return
        kind = classify(raw)
        if kind is None:
            self._show(raw)
            return
        self.hidden += 1
        self._hide_source_line = kind.python_warning
        if kind.kind not in self._explained:
            self._explained.add(kind.kind)
            match = kind.pattern.search(raw)
            assert match is not None
            self.progress("note: " + kind.why.format(*match.groups())
                          + " (Lines like it are not repeated here; the full log keeps them.)")

    def tick(self) -> None:
        if self._clock() - self._last_shown < self._quiet_s:
            return
        what = ("vLLM is still loading its Python libraries" if self._log_lines == 0
                else "still starting (vLLM prints its next line when the step it is on ends)")
        self.progress(f"{self.elapsed():.0f} s: {what}")


class StartBar(StartView):
    """What a start shows when nobody asked for its log (`on_log=None`): one line that keeps
    its place (tqdm: a widget in a notebook, a line on the terminal's stderr) with the start's
    latest step and the seconds so far, left in place as "healthy after N s" at the end."""

    WIDTH = 100

    def __init__(self, name: str) -> None:
        from tqdm.auto import tqdm  # a small dependency, loaded only for a start that waits

        self._bar = tqdm(total=None, desc=f"starting {name}", bar_format="{desc} [{elapsed}]")
        super().__init__(self._describe, quiet_s=float("inf"))

    def _describe(self, text: str) -> None:
        text = " ".join(text.split())
        self._bar.set_description_str(text if len(text) <= self.WIDTH
                                      else text[:self.WIDTH - 1] + "…")

    def tick(self) -> None:
        self._bar.refresh()  # the seconds go on while vLLM prints nothing

    def close(self) -> None:
        self._bar.close()


def launching(kind: str, model: str) -> str:
    where = "in a Podman container" if kind == "podman" else "as a local process"
    return f"launching vLLM for {model} {where} ..."


LAUNCHED = ("launched; vLLM loads its Python libraries first, so its log stays quiet for "
            "about 10 s")
