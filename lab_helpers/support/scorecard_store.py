"""ACME's scorecard, the store: one JSON file of measured facts in the lab home.

`record(module, key, value, label=..., unit=...)` adds or replaces one fact; `read_facts()`
reads them all. The views (the scorecard table, module 5's saved runs, the lab's reference
figures) are in `scorecard.py`, which re-exports this module's public names.

    record(2, "constrained_valid_pct", 100.0, label="constrained answers schema-valid", unit="%")

Decisions:
- One JSON file, `<lab home>/results/scorecard.json`: `{"version": 1, "facts": {"<module>":
  {"<key>": {"value", "label", "unit", "recorded_at"}}}}`. A fact is one measured value with
  the words to show it; recording the same key again replaces it (the latest run counts).
- `record` reads, merges and writes under a lock, and writes aside then renames, so two
  notebooks recording at once both keep their facts and a reader never sees half a file.
- A file that cannot be read never stops a module: `record` moves it aside (kept, and named in
  a warning) and starts a new one. `scorecard` shows the rows it could not read as such and
  warns with the fix; it never fails on a bad file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import LabError
from ..paths import lab_home

FILE_NAME = "scorecard.json"
VERSION = 1
NOT_RUN = "not run yet: run module {module}"


@dataclass(frozen=True)
class Pain:
    module: int
    pain: str
    notebook: str


PAINS = (
    Pain(1, "manual model management", "01_deploy_and_chat.ipynb"),
    Pain(2, "inconsistent output formats", "02_structured_outputs.ipynb"),
    Pain(3, "no tool integration", "03_tool_calling.ipynb"),
    Pain(4, "no tool integration (safe, with human approval)", "04_mcp_agents.ipynb"),
    Pain(5, "unknown capacity", "05_benchmark.ipynb"),
)
MODULES = tuple(p.module for p in PAINS)


class ScorecardError(LabError):
    """A fact that cannot be recorded, or a scorecard file that cannot be read."""


class ScorecardWarning(UserWarning):
    """The scorecard file was unreadable: set aside (record) or left out (scorecard)."""


def results_dir() -> Path:
    """Where the modules' measured facts are kept: <lab home>/results."""
    return lab_home() / "results"


def scorecard_path() -> Path:
    return results_dir() / FILE_NAME


# -- reading and writing the file -------------------------------------------------------------


def _unreadable(path: Path, why: str) -> ScorecardError:
    return ScorecardError(
        f"The scorecard file {path} cannot be read: {why}.",
        cause="it was edited by hand, or copied in from elsewhere",
        fix=f"move it away (mv {path} {path}.bad), then run the modules' cells that record "
            "again; the next record() also sets it aside by itself")


def read_facts(path: Path | None = None) -> dict[int, dict[str, dict[str, Any]]]:
    """The recorded facts, {module: {key: fact}}; {} when nothing was recorded yet.

    Raises ScorecardError (what is wrong and the fix) when the file is not a scorecard.
    """
    path = path or scorecard_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable(path, str(exc)) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _unreadable(path, f"not JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict):
        raise _unreadable(path, 'no "facts" object in it')
    facts: dict[int, dict[str, dict[str, Any]]] = {}
    for module, entries in data["facts"].items():
        if not (isinstance(module, str) and module.isdigit() and isinstance(entries, dict)):
            raise _unreadable(path, f"module {module!r} is not a module number with facts")
        for key, fact in entries.items():
            if not (isinstance(fact, dict) and "value" in fact and isinstance(
                    fact.get("label"), str)):
                raise _unreadable(path, f"fact {key!r} of module {module} has no value or label")
        facts[int(module)] = entries
    return facts


def _write(path: Path, facts: dict[int, dict[str, dict[str, Any]]]) -> None:
    """Write aside, then rename over: readers see the old file or the new one, never half."""
    data = {"version": VERSION,
            "facts": {str(m): facts[m] for m in sorted(facts)}}
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        raise


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / f".{FILE_NAME}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _plain(value: Any, key: str) -> bool | int | float | str:
    """A JSON scalar from what a notebook has (numpy scalars included)."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ScorecardError(f"The value of {key!r} is {value}: nothing was measured.",
                                 cause="the cell that measures it failed or measured nothing",
                                 fix="run the module's measuring cell again, then record")
        return value
    raise ScorecardError(f"The value of {key!r} is a {type(value).__name__}: record one number, "
                         "yes/no or short text.",
                         fix=f"record({key!r}, float(x), ...) for each figure you keep")


def record(module: int, key: str, value: Any, *, label: str, unit: str = "") -> Path:
    """Keep one measured fact of `module` in the scorecard (replacing an earlier one of `key`).

    `label` says what was measured, in words a reader of the scorecard understands;
    `unit` is shown after the value ("s", "ms", "%", "requests/s"). Returns the file's path.
    """
    if module not in MODULES:
        raise ScorecardError(f"There is no module {module!r} on ACME's scorecard.",
                             fix=f"record one of modules {', '.join(map(str, MODULES))}")
    if not (isinstance(key, str) and key.strip()):
        raise ScorecardError("A fact needs a key (a short name like 'startup_s').",
                             fix="record(1, 'startup_s', 23.4, label='...', unit='s')")
    if not (isinstance(label, str) and label.strip()):
        raise ScorecardError(f"The fact {key!r} needs a label: what was measured, in words.",
                             fix=f"record({module}, {key!r}, ..., label='what this measures')")
    fact = {"value": _plain(value, key), "label": label.strip(), "unit": str(unit),
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path = scorecard_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        try:
            facts = read_facts(path)
        except ScorecardError as exc:
            aside = path.with_name(f"{FILE_NAME}.unreadable-{datetime.now(UTC):%Y%m%d-%H%M%S}")
            os.replace(path, aside)
            warnings.warn(f"{exc.what} It was moved to {aside}; a new scorecard starts with "
                          f"this fact.", ScorecardWarning, stacklevel=2)
            facts = {}
        facts.setdefault(module, {})[key] = fact
        _write(path, facts)
    return path
