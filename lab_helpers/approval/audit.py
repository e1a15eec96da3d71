"""The audit log: append-only JSON lines in the lab home, one per decision and per run."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..paths import lab_home

if TYPE_CHECKING:
    import pandas as pd

AUDIT_FILENAME = "tool_audit.jsonl"


class AuditLog:
    """Append-only JSON lines: one line per decision and per run, never rewritten."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else lab_home() / AUDIT_FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(jsonable(record), ensure_ascii=False, default=str)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def records(self, *, session: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if session is None or rec.get("session") == session:
                    out.append(rec)
        return out

    def frame(self, *, session: str | None = None) -> pd.DataFrame:
        import pandas as pd

        columns = ["time", "server", "tool", "arguments", "decision", "decided_by", "event",
                   "result"]
        rows = self.records(session=session)
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def summarize(status: str, content: Any, limit: int = 160) -> str:
    text = content if isinstance(content, str) else json.dumps(jsonable(content), default=str)
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
