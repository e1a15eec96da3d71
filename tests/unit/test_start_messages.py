"""What a learner reads while a server starts (lab_helpers/server/startlog.py): the known
harmless lines of vLLM 0.32's start log are hidden, each kind explained once; every other line
is shown as it is; the lab says what it is doing while the log is quiet.

The lines below are copied from real start logs (a local process and a Podman container).
The same against a real start: tests/integration/test_start_messages.py.
"""

from __future__ import annotations

import pytest

from lab_helpers.server.startlog import HARMLESS, LAB, StartBar, StartView, classify

SITE = "/opt/venv/lib/python3.11/site-packages/vllm"
HARMLESS_LINES = {
    "ulimit": "(APIServer pid=1) WARNING 12-03 18:09:45 [system_utils.py:255] Found ulimit of "
              "16384 and failed to automatically increase with error current limit exceeds "
              "maximum limit. This can cause fd limit errors like `OSError: [Errno 24] Too many "
              "open files`. Consider increasing with ulimit -n",
    "triton": "Triton is installed, but doesn't include CPU backend. Disabling Triton.",
    "triton-cpu": "(APIServer pid=1) WARNING 12-03 18:09:56 [cpu.py:224] Triton is not "
                  "installed. triton-cpu is expected on x86 CPUs.",
    "runner-v2": "(VllmWorker-0 pid=27288) WARNING 12-03 17:21:21 [vllm.py:725] Model Runner V2 "
                 "requires Triton; using the V1 model runner instead.",
    "api_server-module": f"{SITE}/entrypoints/openai/api_server.py:24: DeprecationWarning: "
                         "`vllm.entrypoints.openai.api_server` is deprecated and will likely "
                         "beunsupported in a future version. Use the corresponding function "
                         "from `vllm.entrypoints.launchers` instead.",
    "api_server-command": f"{SITE}/entrypoints/openai/api_server.py:51: DeprecationWarning: The "
                          "`python -m vllm.entrypoints.openai.api_server` command is deprecated "
                          "and may be removed in a future release. Please use `vllm server` "
                          "instead.",
    "one_process_seed": "(APIServer pid=20185) WARNING 12-04 17:36:18 [arg_utils.py:1945] The "
                        "global random seed is set to 0. Since VLLM_ENABLE_V1_MULTIPROCESSING "
                        "is set to False, this may affect the random state of the Python "
                        "process that launched vLLM.",
    "reduce_op": f"{SITE}/triton_utils/dispatcher.py:138: FutureWarning: "
                 "`torch.distributed.reduce_op` is deprecated, please use "
                 "`torch.distributed.ReduceOp` instead",
}
SHOWN_LINES = [
    "(APIServer pid=1) INFO 12-03 18:09:45 [api_utils.py:286] non-default args: {'model': "
    "'/models/smollm2-135m-instruct', 'enforce_eager': True}",
    "(EngineCore pid=27072) INFO 12-03 17:21:22 [kv_cache_utils.py:2327] CPU KV cache size: "
    "46,592 tokens, Maximum concurrency for 8,192 tokens per request: 5.69x",
    "(APIServer pid=1) INFO 12-03 18:10:30 [entry.py:140] Starting vLLM server on "
    "http://0.0.0.0:8000",
    # Failures must never be hidden, even when they name Triton or a limit.
    "(EngineCore pid=26) ERROR 12-03 18:10:11 [core.py:1100] EngineCore failed to start.",
    "RuntimeError: Triton kernel launch failed: out of resources",
    "OSError: [Errno 24] Too many open files",
    "api_server.py: error: unrecognized arguments: --no-such-vllm-flag",
]


KINDS = {"ulimit": "ulimit", "triton": "triton", "triton-cpu": "triton", "runner-v2": "triton",
         "api_server-module": "api_server", "api_server-command": "api_server",
         "reduce_op": "torch_reduce_op", "one_process_seed": "one_process_seed"}


@pytest.mark.parametrize("name", HARMLESS_LINES)
def test_each_known_harmless_line_is_recognised(name):
    kind = classify(HARMLESS_LINES[name])
    assert kind is not None and kind.kind == KINDS[name]


@pytest.mark.parametrize("line", SHOWN_LINES)
def test_other_lines_and_every_failure_are_shown(line):
    assert classify(line) is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_hidden_lines_are_explained_once_per_kind_and_the_rest_pass_as_they_are():
    shown: list[str] = []
    view = StartView(shown.append)
    log = [HARMLESS_LINES["triton"], HARMLESS_LINES["api_server-module"], "  warnings.warn(",
           HARMLESS_LINES["api_server-command"], "  warnings.warn(", SHOWN_LINES[0],
           HARMLESS_LINES["ulimit"], HARMLESS_LINES["triton-cpu"], HARMLESS_LINES["runner-v2"],
           SHOWN_LINES[1]]
    for line in log:
        view.line(line)
    notes = [s for s in shown if s.startswith(LAB + "note: ")]
    assert len(notes) == 3  # triton, api_server, ulimit: once each
    assert "16384" in next(n for n in notes if "open files" in n)  # the limit it has
    assert [s for s in shown if not s.startswith(LAB)] == SHOWN_LINES[:2]
    assert view.hidden == len(log) - 2
    assert not any("warnings.warn" in s for s in shown)


def test_an_indented_line_after_a_shown_line_is_not_hidden():
    shown: list[str] = []
    view = StartView(shown.append)
    for line in ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>']:
        view.line(line)
    assert shown == ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>']


def test_a_quiet_start_says_it_goes_on():
    shown: list[str] = []
    clock = Clock()
    view = StartView(shown.append, clock=clock)
    view.progress("launched")
    clock.now += 3
    view.tick()
    assert shown == [LAB + "launched"]  # not yet quiet for long
    clock.now += 3
    view.tick()
    assert shown[-1] == LAB + "6 s: vLLM is still loading its Python libraries"
    view.line(SHOWN_LINES[0])
    clock.now += 4
    view.tick()
    assert shown[-1] == SHOWN_LINES[0]  # a line was shown 4 s ago
    clock.now += 2
    view.tick()
    assert shown[-1].startswith(LAB + "12 s: still starting")


def test_every_kind_explains_itself_in_plain_words():
    for kind in HARMLESS:
        assert len(kind.why.split()) >= 10
        assert "nothing" in kind.why or "works as before" in kind.why


def test_a_start_without_a_log_shows_one_line_with_its_latest_step(capsys):
    """`server.start(cfg)` (no on_log) keeps one line: the latest step, shortened, then the
    final word; vLLM's own lines pass through it without piling up."""
    bar = StartBar("chat")
    bar.progress("launching vLLM ...")
    bar.line("INFO 12-04 10:00:00 [api_server.py:1] vLLM API server version 0.32.0 " + "x" * 300)
    shown = capsys.readouterr().err
    assert "x" * 300 not in shown and "…" in shown
    bar.tick()
    bar.progress("healthy after 31.0 s")
    bar.close()
    last = capsys.readouterr().err.rstrip().split("\r")[-1]
    assert "healthy after 31.0 s" in last and "\n" not in last.strip()
