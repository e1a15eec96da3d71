"""The test suite timed as CI runs it: the README's test command in a clean clone of HEAD.

    .venv/bin/python -m benchmarks.test_run [--no-quick] [--no-other-runtime] [--no-save]

(run from the repository's root, on an idle machine: it takes about 40 minutes.) It clones
the committed HEAD into a temporary folder and runs `./lab test` there as `.ci/run` does
(CI=true, DEBIAN_FRONTEND=noninteractive, no standard input), adding pytest's JUnit report;
then, as `.ci/run` does, `./lab test --other-runtime`, and `./lab test --quick`, in the same
clone. Uncommitted changes are not in the clone: the
report names the commit it measured.

It writes benchmarks/results/test_run.json: when, which commit, the machine; the setup's time
(until `./lab` says it runs the suite) and the suite's (pytest's own figure), its counts, the
minutes of each part (unit, integration, notebooks, browser: the JUnit report's test times,
setup and teardown included), the slowest files; the other-runtime run's time, counts and
seconds per file; and the quick run's time and counts. The
README and docs/ENGINEERING.md quote it (tests/unit/test_cited_results.py checks them). The
whole log stays in the temporary folder (its path is in the report).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.publish import RESULTS, publish
from lab_helpers.paths import REPO_ROOT

SUITE_STARTS = "running the test suite"  # what ./lab prints when the setup is done
SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s")
# `./lab test --other-runtime`'s JUnit report (tests/other_runtime_run.py), in its lab.
OTHER_RUNTIME_REPORT = (Path.home() / ".cache" / "vllm-lab-test-other-runtime"
                        / "whole-notebooks.xml")
TARGET_TESTS_MIN = 25.0  # issue 18: the suite (after setup) under 25 minutes on this machine


def run_logged(command: list[str], cwd: Path, log: Path) -> tuple[int, float, float | None,
                                                                   list[str]]:
    """Run `command` as CI does; (exit code, wall seconds, seconds until the suite started or
    None, the output's lines). Every line goes to `log` with the seconds since the start."""
    env = {**os.environ, "CI": "true", "DEBIAN_FRONTEND": "noninteractive"}
    start = time.monotonic()
    suite_at = None
    lines: list[str] = []
    with log.open("w") as out, subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic() - start
            out.write(f"{now:8.1f} {line}")
            out.flush()
            lines.append(line.rstrip("\n"))
            if suite_at is None and SUITE_STARTS in line:
                suite_at = now
        code = proc.wait()
    return code, time.monotonic() - start, suite_at, lines


def pytest_summary(lines: list[str]) -> dict[str, Any]:
    """pytest's last line: its counts ({"passed": 1444, ...}) and seconds."""
    for line in reversed(lines):
        found = SUMMARY.match(line.strip())
        if found:
            counts = {kind: int(n) for n, kind in
                      re.findall(r"(\d+) (\w+)", found.group("counts"))}
            return {"counts": counts, "seconds": float(found.group("seconds"))}
    return {"counts": {}, "seconds": None}


def part_of(classname: str) -> tuple[str, str]:
    """(part, file) of a JUnit test case: tests.unit.test_x -> ("unit", "tests/unit/test_x.py"),
    notebooks.05_benchmark.ipynb -> ("notebooks", "notebooks/05_benchmark.ipynb")."""
    pieces = classname.split(".")
    if pieces[0] == "notebooks":
        return "notebooks", "notebooks/" + ".".join(pieces[1:3])
    module = pieces[:3] if len(pieces) > 3 and pieces[3][:1].isupper() else pieces
    return pieces[1], "/".join(module) + ".py"


def junit_figures(path: Path, slowest: int = 10) -> dict[str, Any]:
    """Minutes per part and the slowest files, from pytest's JUnit report."""
    parts: Counter[str] = Counter()
    files: Counter[str] = Counter()
    for case in ET.parse(path).getroot().iter("testcase"):
        part, file = part_of(case.get("classname", ""))
        seconds = float(case.get("time", 0))
        parts[part] += seconds
        files[file] += seconds
    return {"minutes_by_part": {part: round(s / 60, 1) for part, s in parts.most_common()},
            "slowest_files_s": {file: round(s) for file, s in files.most_common(slowest)}}


def clone_head(into: Path) -> str:
    """Clone the committed HEAD into `into`; its commit."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("note: uncommitted changes are not measured (the clone is of HEAD)", flush=True)
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(into)], check=True)
    return commit


def measure(quick: bool, other_runtime: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vllm-lab-test-run-"))
    clone = work / "lab"
    commit = clone_head(clone)
    junit = work / "junit.xml"
    began = datetime.now(UTC)
    print(f"running ./lab test in {clone} (log: {work / 'test.log'})", flush=True)
    code, wall, suite_at, lines = run_logged(
        ["./lab", "test", f"--junitxml={junit}"], clone, work / "test.log")
    suite = pytest_summary(lines)
    report: dict[str, Any] = {
        "benchmark": "test_run",
        "date": began.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "command": "./lab test (as .ci/run: CI=true, no standard input), in a clean clone",
        "exit_code": code,
        "setup_s": round(suite_at, 1) if suite_at is not None else None,
        "tests_s": suite["seconds"],
        "wall_s": round(wall, 1),
        "counts": suite["counts"],
        "tests": sum(n for kind, n in suite["counts"].items() if kind != "warnings"),
        **(junit_figures(junit) if junit.exists() else {}),
        "targets": {"tests_min": TARGET_TESTS_MIN},
        "log": str(work / "test.log"),
    }
    if other_runtime:
        print("running ./lab test --other-runtime", flush=True)
        code, wall, _, lines = run_logged(["./lab", "test", "--other-runtime"], clone,
                                          work / "other-runtime.log")
        summary = pytest_summary(lines)
        report["other_runtime"] = {
            "command": "./lab test --other-runtime: every notebook whole in the runtime the "
                       "suite's notebooks do not use, and the browser tests in the one the "
                       "suite's browser tests do not use (tests/other_runtime_run.py)",
            "exit_code": code, "wall_s": round(wall, 1), "tests_s": summary["seconds"],
            "counts": summary["counts"],
            "seconds_by_file": (junit_figures(OTHER_RUNTIME_REPORT)["slowest_files_s"]
                                    if OTHER_RUNTIME_REPORT.exists() else {})}
    if quick:
        print("running ./lab test --quick", flush=True)
        code, wall, _, lines = run_logged(["./lab", "test", "--quick"], clone,
                                          work / "quick.log")
        summary = pytest_summary(lines)
        report["quick"] = {"exit_code": code, "wall_s": round(wall, 1),
                           "tests_s": summary["seconds"], "counts": summary["counts"]}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-quick", action="store_true", help="skip ./lab test --quick")
    parser.add_argument("--no-other-runtime", action="store_true",
                        help="skip ./lab test --other-runtime")
    parser.add_argument("--no-save", action="store_true",
                        help=f"print only; do not write {RESULTS / 'test_run.json'}")
    args = parser.parse_args()
    report = measure(quick=not args.no_quick, other_runtime=not args.no_other_runtime)
    publish(report, None if args.no_save else RESULTS / "test_run.json")


if __name__ == "__main__":
    main()
