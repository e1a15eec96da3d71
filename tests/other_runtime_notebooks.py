"""Every notebook, whole, in the runtime `./lab test` does not use: `./lab test --other-runtime`.

    ./lab test --other-runtime [pytest options]   (python -m tests.other_runtime_notebooks)

`./lab test` runs every notebook top to bottom under nbval in the default runtime (Podman
wherever it works) and covers the other runtime in part: each module's main steps in
JupyterLab in a real browser against local processes (tests/browser), modules 2-4's core paths
against a local-process room server (tests/integration/test_room_join.py), `./lab start` and
the server lifecycle in both runtimes. This runs every notebook whole once more under
nbval in the other runtime, in a lab of its own (the test lab's home + "-other-runtime", ports
+ 300: it clashes with nothing). On two cores it costs about as much as the notebooks' part of
the suite, and run beside the suite it slowed every test it overlapped (one run: the suite took
over 36 min instead of 25), so it is a run of its own after the suite; `.ci/run` runs both.

Its JUnit report is `whole-notebooks.xml` in that lab's home (benchmarks/test_run.py reads it).
Where the other runtime is local processes, it also checks that the chat server really ran as
one (a local server writes its log in the lab's home).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lab_helpers.paths import REPO_ROOT
from tests.local_runtime_lab import default_runtime, side_lab_env

NOTEBOOKS_DIR = "notebooks"
REPORT = "whole-notebooks.xml"


def other_runtime() -> tuple[str | None, str]:
    """(runtime, why): the runtime nbval's notebooks do not use, or None and why there is
    none (Podman is the other runtime only where it works and the lab image is built)."""
    if default_runtime() == "podman":
        return "local", "./lab test runs the notebooks in Podman"
    from lab_helpers.server.config import chat_server
    from lab_helpers.server.podman_cli import image_exists, podman_status

    usable, reason = podman_status()
    if not usable:
        return None, ("./lab test runs the notebooks as local processes and Podman is not "
                      f"usable ({reason}): there is no other runtime here")
    image = chat_server("cpu").image
    if not image_exists(image):
        return None, (f"./lab test runs the notebooks as local processes; Podman works but "
                      f"{image} is not built: run `vllm-lab build-image` (./lab test does)")
    return "podman", "./lab test runs the notebooks as local processes"


def lab_cli(env: dict[str, str], *args: str) -> None:
    """`vllm-lab <args>` in the side lab; raises if it fails."""
    subprocess.run([sys.executable, "-m", "lab_helpers.cli", *args], env=env, check=True,
                   stdin=subprocess.DEVNULL)


def main(pytest_args: list[str]) -> int:
    runtime, why = other_runtime()
    if runtime is None:
        print(f"nothing to run: {why}")
        return 0
    env = side_lab_env("-other-runtime", 300, runtime)
    home = Path(env["VLLM_LAB_HOME"])
    print(f"running every notebook in the {runtime} runtime ({why}), in the lab {home}",
          flush=True)
    lab_cli(env, "down", "--stale")  # what a killed run left behind
    # The bundled models, as `./lab start` prepares them before a learner's module 1.
    lab_cli(env, "prepare-models")
    began = time.time()
    code = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=900",
         NOTEBOOKS_DIR, "-p", "no:cacheprovider", f"--junitxml={home / REPORT}", *pytest_args],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL).returncode
    if code == 0 and runtime == "local":
        chat_log = home / "logs" / "chat.log"
        if not (chat_log.exists() and chat_log.stat().st_mtime >= began):
            print(f"FAILED: the notebooks passed but {chat_log} was not written: their chat "
                  "server did not run as a local process")
            return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
