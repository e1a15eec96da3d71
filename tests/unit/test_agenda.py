"""Every module is a workshop a room can finish: an agenda, a core path of 90 minutes in all,
optional deep dives that can be skipped, and exercises the learner completes.

The core path's run time comes from a timed run of it (benchmarks/core_path.py, results in
benchmarks/results/core_path.json); its reading time is counted here, from the notebooks as
they are now (words / 200 per minute).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests import notebook_agenda as na

CORE_PATH_BUDGET_MIN = 90
RESULTS = na.REPO_ROOT / "benchmarks" / "results" / "core_path.json"
NOTEBOOKS = na.module_notebooks()
IDS = [p.stem for p in NOTEBOOKS]


def _nb(path: Path):
    return na.read(path)


def core_minutes(path: Path) -> int:
    _, rows = na.agenda(_nb(path))
    return sum(r.minutes for r in rows if r.path == "core")


def test_there_are_six_notebooks_in_order():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_agenda_lists_every_section_in_order(path):
    nb = _nb(path)
    index, rows = na.agenda(nb)
    assert index == 1, "the agenda is the cell right after the module's introduction"
    sections = na.sections(nb)
    assert [r.section for r in rows] == [s.heading for s in sections]
    for row, section in zip(rows, sections, strict=True):
        assert (row.path == "optional") == section.optional, \
            f"{row.section!r}: the agenda's path and the heading's '(optional)' disagree"
        assert row.minutes > 0, f"{row.section!r} takes no time?"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_optional_sections_are_tagged_and_come_after_the_core(path):
    nb = _nb(path)
    sections = na.sections(nb)
    for section in sections:
        if section.optional:
            untagged = [i for i in section.cells if not na.is_optional(nb.cells[i])]
            assert not untagged, f"{section.heading!r}: cells {untagged} lack the optional tag"
    seen_optional = False
    for section in sections:
        if section.optional:
            seen_optional = True
        elif seen_optional:
            assert section.heading in na.AFTER_OPTIONAL, \
                f"core section {section.heading!r} comes after an optional one"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_skipping_the_optional_cells_breaks_no_later_cell(path):
    assert na.skipped_names_used_later(_nb(path)) == []


def test_the_skip_check_catches_a_core_cell_that_needs_an_optional_one():
    import nbformat.v4 as v4

    nb = v4.new_notebook(cells=[v4.new_code_cell("a = 1"),
                                v4.new_code_cell("b = a + 1", metadata={"tags": ["optional"]}),
                                v4.new_code_cell("print(a, b)")])
    assert na.skipped_names_used_later(nb) == [(2, "b")]
    nb.cells[2].source = "b = 2\nprint(a, b)"
    assert na.skipped_names_used_later(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_exercises_are_done_by_the_learner_with_hidden_solutions(path):
    nb = _nb(path)
    exercise = next(s for s in na.sections(nb) if s.heading == "Exercises")
    cells = [nb.cells[i] for i in exercise.cells]
    core_exercises = [c for c in cells if "exercise" in na.tags(c) and not na.is_optional(c)]
    assert len(core_exercises) >= (1 if path.name.startswith("06") else 2)
    for cell in cells:
        cell_tags = na.tags(cell)
        if "exercise" in cell_tags:
            assert "..." in cell.source, "an exercise cell leaves a `...` for the learner"
            assert not na.is_hidden(cell)
        if "solution" in cell_tags:
            assert na.is_hidden(cell), "solutions are hidden until the learner opens them"
            assert cell.source.startswith("# Solution")
            assert cell.cell_type == "code"
        if "answer" in cell_tags:
            assert na.is_hidden(cell) and cell.source.startswith("**Answer.**")
    # each exercise cell is followed by its check and then its (hidden) solution
    order = [t for c in cells for t in na.tags(c) if t in ("exercise", "check", "solution")]
    for i, tag in enumerate(order):
        if tag == "exercise":
            assert order[i + 1: i + 3] == ["check", "solution"], order


def test_the_core_path_fits_the_workshop():
    assert RESULTS.exists(), "run benchmarks/core_path.py to time the core path"
    measured = json.loads(RESULTS.read_text())["modules"]
    total = 0
    for path in NOTEBOOKS:
        nb = _nb(path)
        reading = na.core_words(nb) / na.WORDS_PER_MINUTE
        running = measured[path.stem]["core_run_s"] / 60
        scheduled = core_minutes(path)
        assert scheduled >= math.floor(reading + running), \
            (f"{path.name}: the agenda gives the core {scheduled} min, but reading takes "
             f"{reading:.1f} and its cells run {running:.1f}")
        total += scheduled
    assert total <= CORE_PATH_BUDGET_MIN, f"the core path of all modules takes {total} min"


def test_the_readme_gives_each_modules_core_path():
    readme = (na.REPO_ROOT / "README.md").read_text()
    table = readme.split("<!-- core-path-table -->", 1)[1].split("\n\n", 1)[0]
    stated = {}
    for line in [line for line in table.splitlines() if line.startswith("|")][2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        stated[cells[1].strip("`")] = int(cells[-1].removesuffix(" min"))
    assert stated == {f"notebooks/{p.name}": core_minutes(p) for p in NOTEBOOKS}
    total = sum(stated.values())
    assert f"all six takes about {total} minutes" in readme


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_the_agenda_says_its_own_total(path):
    nb = _nb(path)
    index, _ = na.agenda(nb)
    assert f"The core path takes about {core_minutes(path)} minutes" in nb.cells[index].source
