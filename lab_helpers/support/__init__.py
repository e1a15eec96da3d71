"""ACME's support backend: a SQLite database and the domain functions that serve it.

    from lab_helpers.support import SupportDesk
    desk = SupportDesk()                        # <lab home>/acme_support.sqlite
    desk.search_products("wireless headphones", max_price=100)
    desk.reset()                                # back to the seed

Module 3 turns the desk's methods into tools (`lab_helpers.tools`); module 4 serves the same
methods over MCP. `db` holds the schema, the seed loader and the transaction helper;
`search` a small semantic search over ACME's FAQ with the embeddings server (module 1);
`scorecard` what each module measured against ACME's pains (imported on its own:
`from lab_helpers.support.scorecard import record, scorecard`).

May import: `errors`, `paths`, `connect` (only the FAQ search, to reach the embeddings server;
the desk knows nothing about models or tools), `bench` (only the scorecard, to read module 5's
saved runs with module 5's own verdicts).
"""

from __future__ import annotations

from . import db
from .db import default_db_path
from .desk import WRITE_TOOLS, NotFound, Priority, SupportDesk, SupportError

__all__ = ["WRITE_TOOLS", "NotFound", "Priority", "SupportDesk", "SupportError", "db",
           "default_db_path"]
