"""How a module notebook is laid out for a learner: its agenda, sections, core path and exercises.

Every module opens with an agenda cell (`## Agenda` and one table: Section | Minutes | Path),
one row per `## ` section. Optional sections (deep dives) end their heading with "(optional)",
carry the cell tag `optional` on every cell, and come in one block after the core (only
Exercises and Clean up may follow them). The core path is every cell not tagged `optional`.
Read by tests/unit/test_agenda.py and benchmarks/core_path.py (which times the core path).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
WORDS_PER_MINUTE = 200
# `## ` headings that are scaffolding, not sections a learner schedules.
UNSCHEDULED = {"Learning objectives", "Agenda", "Imports", "Parameters", "Summary",
               "What's next"}
# Core sections allowed after the block of optional ones.
AFTER_OPTIONAL = {"Exercises", "Clean up"}
OPTIONAL_SUFFIX = " (optional)"


@dataclass(frozen=True)
class AgendaRow:
    section: str
    minutes: int
    path: str  # "core" or "optional"


@dataclass
class Section:
    heading: str  # without "## " and without " (optional)"
    optional: bool
    cells: list[int] = field(default_factory=list)  # indexes into the notebook's cells


def module_notebooks() -> list[Path]:
    """The numbered notebooks a learner takes, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def is_optional(cell) -> bool:
    return "optional" in tags(cell)


def is_hidden(cell) -> bool:
    return bool(cell.metadata.get("jupyter", {}).get("source_hidden"))


def agenda(nb: nbformat.NotebookNode) -> tuple[int, list[AgendaRow]]:
    """The agenda cell's index and its rows; ValueError when there is none or it is malformed."""
    for index, cell in enumerate(nb.cells):  # noqa: B007 - the index is returned below
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Agenda"):
            break
    else:
        raise ValueError("no markdown cell starts with '## Agenda'")
    rows: list[AgendaRow] = []
    lines = [ln.strip() for ln in cell.source.splitlines() if ln.strip().startswith("|")]
    if len(lines) < 3 or [c.strip() for c in lines[0].strip("|").split("|")] != \
            ["Section", "Minutes", "Path"]:
        raise ValueError("the agenda's table must have the columns Section | Minutes | Path")
    for line in lines[2:]:
        section, minutes, path = (c.strip() for c in line.strip("|").split("|"))
        if path not in ("core", "optional"):
            raise ValueError(f"agenda row {section!r}: Path must be core or optional, not {path!r}")
        rows.append(AgendaRow(section, int(minutes), path))
    return index, rows


def sections(nb: nbformat.NotebookNode) -> list[Section]:
    """The scheduled `## ` sections after the agenda, in order, with the cells each holds."""
    start, _ = agenda(nb)
    found: list[Section] = []
    current: Section | None = None
    for index in range(start + 1, len(nb.cells)):
        cell = nb.cells[index]
        heading = _h2(cell)
        if heading is not None:
            name = heading.removesuffix(OPTIONAL_SUFFIX)
            current = None if name in UNSCHEDULED else \
                Section(name, heading.endswith(OPTIONAL_SUFFIX))
            if current is not None:
                found.append(current)
        if current is not None:
            current.cells.append(index)
    return found


def _h2(cell) -> str | None:
    if cell.cell_type != "markdown":
        return None
    for line in cell.source.splitlines():
        if line.startswith("## "):
            return line[3:].strip()
    return None


def core_cells(nb: nbformat.NotebookNode) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if not is_optional(c)]


def words(text: str) -> int:
    return len(re.findall(r"\w[\w'’-]*", text))


def core_words(nb: nbformat.NotebookNode) -> int:
    """Words of markdown on the core path (hidden answers count: a learner reads them too)."""
    return sum(words(c.source) for c in nb.cells
               if c.cell_type == "markdown" and not is_optional(c))


def python_source(source: str) -> str:
    """A cell as the kernel runs it: IPython's `!command` and `%magic` lines become Python."""
    return TransformerManager().transform_cell(source)


def assigned_names(source: str) -> set[str]:
    """Names a cell binds at its top level (assignments, imports, defs, loop and with targets)."""
    tree = ast.parse(python_source(source))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def used_names(source: str) -> set[str]:
    """Names a cell reads that it does not bind itself first (a rough, conservative reading)."""
    tree = ast.parse(python_source(source))
    loads = {n.id for n in ast.walk(tree)
             if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    local: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            local.update(a.arg for a in args.args + args.kwonlyargs + args.posonlyargs)
            local.update(a.arg for a in (args.vararg, args.kwarg) if a is not None)
        elif isinstance(node, ast.comprehension):
            local.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))
    return loads - local


def skipped_names_used_later(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, name) for each core cell that reads a name that only optional cells
    bound before it."""
    bound_by_core: set[str] = set()
    bound_by_optional: set[str] = set()
    problems: list[tuple[int, str]] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if is_optional(cell):
            bound_by_optional |= assigned_names(cell.source)
            continue
        reads = used_names(cell.source) - assigned_names(cell.source)
        for name in sorted(reads & (bound_by_optional - bound_by_core)):
            problems.append((index, name))
        bound_by_core |= assigned_names(cell.source)
    return problems
