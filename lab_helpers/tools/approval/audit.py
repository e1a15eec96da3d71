"""The audit log: append-only JSON lines in the lab home, one per decision and per run.

Each record is written as one line of ASCII JSON (`ensure_ascii=True`): whatever a model put in
its arguments or a tool in its result (U+2028, U+0085, a lone surrogate...) is escaped, so the
only line break in the file is the "\n" after each record. Reading splits on "\n" only, and is
tolerant: a line that is not a record (cut short by a crash, corrupted, written by an older
version) is skipped, listed in `AuditLog.bad_lines` and reported with an `AuditWarning` naming
its line number, while every other record still reads.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...paths import lab_home

if TYPE_CHECKING:
    import pandas as pd

AUDIT_FILENAME = "tool_audit.jsonl"


class AuditWarning(RuntimeWarning):
    """Some lines of the audit file are not records: they were skipped (see `bad_lines`)."""


@dataclass(frozen=True)
class BadLine:
    """A line of the audit file that is not a record."""

    number: int
    """1-based line number in the file."""
    reason: str
    text: str
    """The start of the line, as far as it decodes."""


class AuditLog:
    """Append-only JSON lines: one line per decision and per run, never rewritten."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else lab_home() / AUDIT_FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.bad_lines: list[BadLine] = []
        """The lines the last `records()` skipped."""

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one ASCII line (raises OSError if the file cannot be written).

        A last line cut short (a crash mid-write) is ended first, so it cannot swallow this one.
        """
        line = json.dumps(jsonable(record), ensure_ascii=True, default=str).encode("ascii")
        with self._lock, self.path.open("a+b") as f:
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line + b"\n")

    def records(self, *, session: str | None = None) -> list[dict[str, Any]]:
        """Every record (of one session, if given); lines that are not go to `bad_lines`."""
        with self._lock:
            data = self.path.read_bytes() if self.path.exists() else b""
        out, bad = [], []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            rec = _parse(raw)
            if isinstance(rec, str):
                bad.append(BadLine(number, rec, raw[:120].decode("utf-8", "replace")))
            elif session is None or rec.get("session") == session:
                out.append(rec)
        self.bad_lines = bad
        if bad:
            numbers = ", ".join(str(b.number) for b in bad[:10]) + (", ..." if bad[10:] else "")
            warnings.warn(f"{self.path}: skipped {len(bad)} line(s) that are not audit records "
                          f"(line{'s' if len(bad) > 1 else ''} {numbers}); see "
                          "AuditLog.bad_lines", AuditWarning, stacklevel=2)
        return out

    def frame(self, *, session: str | None = None) -> pd.DataFrame:
        import pandas as pd

        columns = ["time", "server", "tool", "arguments", "decision", "decided_by", "event",
                   "result"]
        rows = self.records(session=session)
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def _parse(raw: bytes) -> dict[str, Any] | str:
    """One line's record, or why it is not one."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return f"{type(exc).__name__}: {exc}"
    return rec if isinstance(rec, dict) else f"a JSON {type(rec).__name__}, not a record"


def summarize(status: str, content: Any, limit: int = 160) -> str:
    try:
        text = content if isinstance(content, str) else \
            json.dumps(jsonable(content), default=str)
    except (ValueError, TypeError, RecursionError) as exc:  # circular or absurdly deep
        text = f"<{type(content).__name__} that cannot be shown: {type(exc).__name__}>"
    text = " ".join(text.split())
    return f"{status}: {text[:limit]}{'...' if len(text) > limit else ''}"


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and type(value).__module__ != "builtins" and \
            not isinstance(value, (str, int, float, bool)):
        return jsonable(value.value)
    return value
