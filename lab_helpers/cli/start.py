"""What `./lab start` does besides JupyterLab: the learner's working copies of the notebooks,
and the default chat server started in the background so module 1's first start is warm.

Working copies: JupyterLab saves outputs into the notebooks it serves, so `./lab start` serves
copies in a git-ignored folder (`my-notebooks/` beside `notebooks/`), made on the first start.
A copy is never overwritten; a module added later is copied in; `vllm-lab workspace --reset 01`
puts one module back as shipped, keeping the learner's version beside it as a backup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import server
from ..errors import LabError
from ..paths import logs_dir
from ..server.config import chat_server
from ..server.gpu import gpu_status

WARM_LOG = "warm-start.log"
"""The background start's output, in the lab home's logs folder."""


# -- working copies ---------------------------------------------------------------------------


def make_workspace(source: Path, dest: Path) -> list[Path]:
    """Copy every notebook of `source` (and the pages they link, such as the glossary) that
    `dest` does not have yet; the copies made."""
    dest.mkdir(parents=True, exist_ok=True)
    made = []
    for notebook in sorted([*source.glob("*.ipynb"), *source.glob("*.md")]):
        target = dest / notebook.name
        if not target.exists():
            shutil.copy2(notebook, target)
            made.append(target)
    return made


def reset_notebook(source: Path, dest: Path, module: str) -> tuple[Path, Path | None]:
    """Put module `module` ("01" or a notebook's name) back as shipped.

    Returns (the fresh copy, the backup of the learner's version or None if there was none).
    """
    matches = sorted(source.glob(f"{module}*.ipynb")) or sorted(source.glob(module))
    if len(matches) != 1:
        shipped = ", ".join(p.name[:2] for p in sorted(source.glob("*.ipynb")))
        raise LabError(f"No single module matches {module!r}.",
                       cause=f"the modules are {shipped}",
                       fix="name one by its number: ./.venv/bin/vllm-lab workspace --reset 01")
    shipped_copy = matches[0]
    target = dest / shipped_copy.name
    backup = None
    if target.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = target.with_name(f"{target.stem}.backup-{stamp}.ipynb")
        n = 1
        while backup.exists():  # two resets within a second: never overwrite a backup
            n += 1
            backup = target.with_name(f"{target.stem}.backup-{stamp}-{n}.ipynb")
        target.replace(backup)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shipped_copy, target)
    return target, backup


# -- the warm first start ---------------------------------------------------------------------


@dataclass(frozen=True)
class WarmStart:
    """What `warm_start` found or did: 'running', 'started', 'left' (another config or an
    unhealthy server under the name: not touched) or 'off'."""

    action: str
    message: str
    pid: int | None = None


def warm_start(profile: str = "cpu") -> WarmStart:
    """Start the default chat server in the background unless one is there already.

    A healthy server with the same config: nothing to do. A server of that name with another
    config, or not healthy: left alone (module 1's start cell says what to do with it). None:
    `vllm-lab up` in its own session (it survives JupyterLab's Ctrl-C), output in the log.
    """
    if profile == "gpu" and not gpu_status()[0]:
        return WarmStart("off", "the lab's profile is gpu and this machine has no usable GPU: "
                                "nothing started (module 1 says what to do)")
    config = chat_server(profile)
    stop = f"stop it with: ./.venv/bin/vllm-lab down {config.name}"
    runtime = server.get_runtime("auto", config)
    decision, existing = runtime.decide(config)  # what module 1's start cell would do
    if decision == "reuse":
        assert existing is not None
        return WarmStart("running", f"the chat server '{config.name}' is already running at "
                                    f"{existing.base_url} ({runtime.kind}); {stop}")
    if decision == "replace":
        return WarmStart("left", f"a server named '{config.name}' exists with another "
                                 "configuration or is not healthy: left as it is (module 1's "
                                 "start cell replaces it)")
    log = logs_dir() / WARM_LOG
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab_helpers.cli", "up", "--profile", profile],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=os.environ.copy())
    return WarmStart("started", f"starting the chat server '{config.name}' in the background "
                                f"({runtime.kind}, about a minute; log: {log}); {stop}",
                     pid=proc.pid)
