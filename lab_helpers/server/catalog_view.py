"""The model catalog as a notebook shows it: every cell's whole text, wrapped, never cut.

pandas shows at most 50 characters of a cell and cuts the rest ("needs an NVIDIA GPU wi…"), so
the "why" column lost its reason. `catalog_frame(rows)` is the catalog's DataFrame with its
own HTML view: all the text, left-aligned and wrapped inside the column. Anything derived from
it (`set_index`, `loc`, ...) is a plain DataFrame again. pandas is imported on first use only.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Inline, so the look survives a notebook opened untrusted (which drops <style> blocks).
CELL_STYLE = "white-space:normal;overflow-wrap:break-word;text-align:left;vertical-align:top"
WIDE_COLUMN = "why"
WIDE_STYLE = "min-width:18em;max-width:34em"


@functools.cache
def _table_class() -> type[pd.DataFrame]:
    import pandas as pd

    class CatalogTable(pd.DataFrame):
        """A DataFrame whose notebook view shows every cell in full, wrapped."""

        @property
        def _constructor(self) -> type[pd.DataFrame]:
            return pd.DataFrame

        def _repr_html_(self) -> str:
            return wrapped_html(self)

    return CatalogTable


def catalog_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame that a notebook shows with every cell in full."""
    return _table_class()(rows)


def wrapped_html(frame: pd.DataFrame) -> str:
    """The table as HTML, no cell cut short; the wide column ("why") wraps in a column of its
    own width instead of stretching the table."""
    import pandas as pd

    with pd.option_context("display.max_colwidth", None):
        text = pd.DataFrame(frame).to_html(index=False, na_rep="", border=0)
    wide = list(frame.columns).index(WIDE_COLUMN) if WIDE_COLUMN in frame.columns else -1

    def style_row(match: re.Match[str]) -> str:
        cells = match.group(0).split("<td>")
        out = cells[0]
        for i, cell in enumerate(cells[1:]):
            extra = f";{WIDE_STYLE}" if i == wide else ""
            out += f'<td style="{CELL_STYLE}{extra}">' + cell
        return out

    text = re.sub(r"<tr>.*?</tr>", style_row, text, flags=re.DOTALL)
    return text.replace("<th>", f'<th style="{CELL_STYLE}">')
