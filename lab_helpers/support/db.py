"""The ACME support database: schema, deterministic seed, reset, transactions (stdlib sqlite3).

One SQLite file in the lab home (`default_db_path()`), so a learner's bookings survive a kernel
restart and `reset()` (or deleting the file) brings back the seed. Tests pass their own path.
Every write runs in one transaction (`with transaction(conn):`): a failure half-way leaves the
database as it was. The seed lives in `lab_helpers/data/acme_support_seed.json`, so the data a
notebook talks about is readable without running anything.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..paths import lab_home

DB_FILENAME = "acme_support.sqlite"
CATEGORIES = ("electronics", "clothing", "home", "sports")
ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled", "returned")
TABLES = ("customers", "products", "orders", "order_items", "tickets", "callbacks")

SCHEMA = f"""
CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('standard', 'silver', 'gold')),
    since TEXT NOT NULL
);
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL CHECK (category IN {CATEGORIES!r}),
    price_cents INTEGER NOT NULL CHECK (price_cents > 0),
    stock INTEGER NOT NULL CHECK (stock >= 0),
    description TEXT NOT NULL
);
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL CHECK (status IN {ORDER_STATUSES!r}),
    ordered_at TEXT NOT NULL,
    shipped_at TEXT,
    expected_delivery TEXT,
    carrier TEXT,
    tracking TEXT
);
CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders(id),
    product_id TEXT NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT REFERENCES customers(id),
    subject TEXT NOT NULL CHECK (length(subject) > 0),
    description TEXT NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    created_at TEXT NOT NULL
);
CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_phone TEXT NOT NULL,
    customer_id TEXT REFERENCES customers(id),
    issue_summary TEXT NOT NULL CHECK (length(issue_summary) > 0),
    preferred_time TEXT CHECK (preferred_time IN ('morning', 'afternoon', 'evening')),
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'done', 'cancelled')),
    created_at TEXT NOT NULL
);
"""


def default_db_path() -> Path:
    """The lab's support database: <lab home>/acme_support.sqlite."""
    return lab_home() / DB_FILENAME


def seed_data() -> dict[str, list[dict[str, Any]]]:
    """The seed as shipped (customers, products, orders with items, tickets, callbacks)."""
    text = files("lab_helpers.data").joinpath("acme_support_seed.json").read_text()
    return json.loads(text)


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection with foreign keys on and rows addressable by column name.

    Autocommit mode (isolation_level=None): transactions are explicit, see `transaction`.
    """
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (which is re-raised)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def create_and_seed(conn: sqlite3.Connection) -> None:
    """Drop every table, create the schema and load the seed, in one transaction."""
    data = seed_data()
    with transaction(conn):
        for table in reversed(TABLES):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany(
            "INSERT INTO customers VALUES (:id, :name, :email, :phone, :tier, :since)",
            data["customers"])
        conn.executemany(
            "INSERT INTO products VALUES (:id, :name, :category, :price_cents, :stock, "
            ":description)",
            [{**p, "price_cents": round(p["price"] * 100)} for p in data["products"]])
        conn.executemany(
            "INSERT INTO orders VALUES (:id, :customer_id, :status, :ordered_at, :shipped_at, "
            ":expected_delivery, :carrier, :tracking)", data["orders"])
        conn.executemany(
            "INSERT INTO order_items VALUES (?, ?, ?)",
            [(o["id"], pid, qty) for o in data["orders"] for pid, qty in o["items"]])
        conn.executemany(
            "INSERT INTO tickets (customer_id, subject, description, priority, status, "
            "created_at) VALUES (:customer_id, :subject, :description, :priority, :status, "
            ":created_at)", data["tickets"])
        conn.executemany(
            "INSERT INTO callbacks (customer_phone, issue_summary, preferred_time, status, "
            "created_at) VALUES (:customer_phone, :issue_summary, :preferred_time, :status, "
            ":created_at)", data["callbacks"])


def is_seeded(conn: sqlite3.Connection) -> bool:
    """True when every table of the schema exists."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return set(TABLES) <= names


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table: the quickest check that nothing was written."""
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered: equal snapshots mean nothing changed."""
    return {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")]
            for t in TABLES}
