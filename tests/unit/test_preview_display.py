"""Issue 19: the command preview was one long line, wrapped by the browser in mid-word.

Shown, it is one argument per line with ` \\` continuations (an option with its value); the
one-line form stays what `server.preview` returns by default (module 3 searches it).
"""

from __future__ import annotations

import html
import re
import shlex
import subprocess

import pytest

from lab_helpers import server
from lab_helpers.server import free_port
from lab_helpers.server.config import ServerConfig, chat_server
from lab_helpers.widgets import ServerPanel


def _joined(multiline: str) -> list[str]:
    """The words a shell reads: a backslash-newline joins the lines."""
    return shlex.split(multiline.replace("\\\n", ""))


@pytest.mark.parametrize("runtime", ["podman", "local"])
def test_multiline_preview_is_the_same_command_one_argument_a_line(runtime):
    config = chat_server("cpu")
    one_line = server.preview(config, runtime=runtime)
    shown = server.preview(config, runtime=runtime, multiline=True)
    assert "\n" not in one_line and "--tool-call-parser hermes" in one_line
    lines = shown.splitlines()
    assert len(lines) > 10
    assert all(line.endswith(" \\") for line in lines[:-1]) and not lines[-1].endswith("\\")
    assert _joined(shown) == shlex.split(one_line)
    assert "  --tool-call-parser hermes \\" in lines  # an option shares its line with its value
    assert all(len(line) < 200 for line in lines if "--health-cmd" not in line)
    if runtime == "podman":
        assert any(line.strip() == "podman run \\" for line in lines)


def test_multiline_preview_runs_in_bash_as_the_same_words():
    shown = server.preview(chat_server("cpu"), runtime="local", multiline=True)
    words = _joined(shown)
    env = [w for w in words if re.match(r"^[A-Z_]+=", w)]
    argv = words[len(env):]
    # bash reads the shown text (continuations and quotes) into exactly these arguments
    out = subprocess.run(["bash", "-c", "printf '%s\\n' " + shown.split(" \\\n", len(env))[-1]],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == argv


def test_server_panel_shows_the_command_on_several_lines(lab_home, tiny_model_dir):
    config = ServerConfig(model=str(tiny_model_dir), name="preview-lines", port=free_port())
    panel = ServerPanel([config], runtime="local", poll_interval=None)
    try:
        shown = panel.rows["preview-lines"].preview
    finally:
        panel.close()
    command = html.unescape(re.search(r"<pre[^>]*>(.*)</pre>", shown, re.DOTALL).group(1))
    assert command.count(" \\\n") > 5
    assert _joined(command) == shlex.split(server.preview(config, runtime="local"))
