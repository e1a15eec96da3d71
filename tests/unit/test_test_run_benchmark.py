"""benchmarks/test_run.py reads pytest's own output: its last line and its JUnit report, here
from a real pytest run on a few throwaway tests laid out like the suite's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.test_run import junit_figures, part_of, pytest_summary


def test_a_real_pytest_run_is_read_into_counts_parts_and_files(tmp_path: Path):
    unit = tmp_path / "tests" / "unit"
    unit.mkdir(parents=True)
    for package in (tmp_path / "tests", unit):
        (package / "__init__.py").write_text("")
    (unit / "test_fast.py").write_text(
        "import time, pytest\n"
        "def test_one(): time.sleep(0.2)\n"
        "def test_two(): pass\n"
        "def test_fails(): assert False\n"
        "@pytest.mark.skip\n"
        "def test_skipped(): pass\n"
        "class TestGroup:\n"
        "    def test_in_a_class(self): pass\n")
    junit = tmp_path / "junit.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider",
                          f"--junitxml={junit}", "--rootdir", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True)
    summary = pytest_summary(run.stdout.splitlines())
    assert summary["counts"] == {"failed": 1, "passed": 3, "skipped": 1}
    assert summary["seconds"] >= 0.2
    figures = junit_figures(junit)
    assert list(figures["minutes_by_part"]) == ["unit"]
    assert list(figures["slowest_files_s"]) == ["tests/unit/test_fast.py"]


def test_parts_and_files_of_notebooks_and_classes():
    assert part_of("notebooks.05_benchmark.ipynb") == ("notebooks", "notebooks/05_benchmark.ipynb")
    assert part_of("tests.integration.test_chat") == ("integration",
                                                      "tests/integration/test_chat.py")
    assert part_of("tests.unit.test_x.TestGroup") == ("unit", "tests/unit/test_x.py")
    assert pytest_summary(["no summary here"]) == {"counts": {}, "seconds": None}
