"""The `vllm-lab` command (`main`) and the machine check it prints (`doctor`).

`main` holds the commands; `doctor` the one screen that says what is ready and the exact fix
for what is not; `start` what `./lab start` does besides JupyterLab (the learner's working
copies of the notebooks, the chat server started in the background).

May import: `server`, `models`, `mcp`, `metrics`, `bench`, `errors`, `paths` (each command
imports what it needs, late, so `vllm-lab status` answers in a second).
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
