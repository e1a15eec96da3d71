"""How every benchmark ends: its figures printed as JSON, and saved for the README's numbers.

    from publish import RESULTS, publish      # benchmarks/ is on sys.path for its scripts
    publish(report, RESULTS / "startup.json")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def publish(report: dict[str, Any], out: Path | str | None) -> None:
    """Print `report` as indented JSON; also write it to `out` unless that is None."""
    text = json.dumps(report, indent=2, default=float)
    print(text)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
