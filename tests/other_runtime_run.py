"""Every notebook whole, and the browser tests, in the runtimes `./lab test` does not use them in.

    ./lab test --other-runtime [pytest options]   (python -m tests.other_runtime_run)

`./lab test` runs every notebook top to bottom under nbval in the default runtime (Podman
wherever it works), and the browser tests (each module's main steps in JupyterLab in a real
browser) in the other one (local processes); modules 2-4's core paths also run against a
local-process room server (tests/integration/test_room_join.py), and `./lab start` and the
server lifecycle run in both runtimes. This run swaps them: every notebook whole under nbval
in the other runtime, in a lab of its own (the test lab's home + "-other-runtime", ports
+ 300: it clashes with nothing), and the browser tests once more, now in the runtime the
notebooks do not use here (the default one: a Podman-runtime lab beside it, tests/side_labs.py).
On two cores it costs about as much as the notebooks' and the browser's parts of the suite, and
run beside the suite it slowed every test it overlapped (one run: the suite took over 36 min
instead of 25), so it is a run of its own after the suite; `.ci/run` runs both.

Its JUnit report is `whole-notebooks.xml` in that lab's home (benchmarks/test_run.py reads it).
Where the notebooks' runtime is local processes, it also checks that their chat server really
ran as one (a local server writes its log in the lab's home).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from lab_helpers.paths import REPO_ROOT
from tests.side_labs import local_runtime_env, other_runtime, podman_runtime_env, side_lab_env

# The browser tests first, as in `./lab test`: the side lab their JupyterLab used is stopped
# before the first notebook (the root conftest.py).
TESTS = ["tests/browser", "notebooks"]
REPORT = "whole-notebooks.xml"


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
    print(f"running every notebook in the {runtime} runtime (in ./lab test {why}), in the lab "
          f"{home}, and the browser tests in the runtime they do not use here", flush=True)
    # The browser tests' lab: beside this one, in the runtime the notebooks do not use here.
    browser_env = (podman_runtime_env if runtime == "local" else local_runtime_env)(env)
    for lab in (env, browser_env):
        lab_cli(lab, "down", "--stale")  # what a killed run left behind
    # The bundled models, as `./lab start` prepares them before a learner's module 1.
    lab_cli(env, "prepare-models")
    began = time.time()
    code = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-cell-timeout=900",
         *TESTS, "-p", "no:cacheprovider", f"--junitxml={home / REPORT}", *pytest_args],
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
