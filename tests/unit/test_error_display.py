"""The lab's errors in a notebook: what failed, the likely cause and the fix, not a page of
library frames (IPython asks the exception how to show itself)."""

from __future__ import annotations

import re

from IPython.core.interactiveshell import InteractiveShell


def shown(capsys) -> str:
    """What the cell printed, without terminal colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)


def test_a_lab_error_shows_what_cause_and_fix_without_frames(capsys):
    shell = InteractiveShell.instance()
    shell.run_cell("from lab_helpers.errors import PortInUse\n"
                   "def deep():\n"
                   "    raise PortInUse('Port 8000 is taken.', cause='another server uses it',\n"
                   "                    fix='vllm-lab down chat')\n"
                   "deep()")
    out = shown(capsys)
    assert "PortInUse: Port 8000 is taken." in out
    assert "Likely cause: another server uses it" in out and "Fix: vllm-lab down chat" in out
    assert "deep()" not in out and "raise PortInUse" not in out
    assert "%tb" in out  # how to see the frames, when they are wanted


def test_other_errors_keep_their_traceback(capsys):
    shell = InteractiveShell.instance()
    shell.run_cell("def deep():\n    raise ValueError('plain')\ndeep()")
    out = shown(capsys)
    assert "ValueError: plain" in out and "deep()" in out
