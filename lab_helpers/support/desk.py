"""ACME's support desk: the domain functions the model's tools (module 3) and the MCP server
(module 4) call. Plain, typed, documented methods over the SQLite database in `db.py`.

    desk = SupportDesk()                      # <lab home>/acme_support.sqlite, seeded if new
    desk.get_order_status("ORD-78432")        # {'order_id': 'ORD-78432', 'status': 'shipped', ...}

Why methods on an object rather than module functions: the database path is the object's, so a
test, a notebook and the MCP server each point at their own file. Bound methods keep the
signatures the tool registry reads (`self` is not a parameter of a bound method).

The parameter constraints (`Field(pattern=...)`) are part of the signature on purpose: they end
up in the tools' JSON schemas, so vLLM's strict mode makes even a small model write an order id
that looks like one, and anything else is rejected before a query runs. Lookups that find
nothing raise `NotFound`; the tool executor turns that into an error result the model reads.
Every query is parameterised: text from the model is never part of the SQL.

Strings are bounded (`max_length`, bounded patterns) for a measured reason: under a strict
schema a small model tends to fill a string to whatever length is allowed, and an unbounded
one runs the call into `max_tokens`, which leaves no call at all.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ..errors import LabError
from . import db

Category = Literal["electronics", "clothing", "home", "sports", "all"]
PreferredTime = Literal["morning", "afternoon", "evening"]

ORDER_ID_PATTERN = r"^ORD-[0-9]{5}$"
CUSTOMER_ID_PATTERN = r"^CUST-[0-9]{4}$"
EMAIL_PATTERN = (r"^[A-Za-z0-9._%+-]{1,30}@[A-Za-z0-9-]{1,20}(\.[A-Za-z0-9-]{1,20}){0,2}"
                 r"\.[A-Za-z]{2,10}$")
PHONE_PATTERN = r"^\+?[0-9][0-9 ().-]{6,18}[0-9]$"

OrderId = Annotated[str, Field(pattern=ORDER_ID_PATTERN)]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=64)]
Phone = Annotated[str, Field(pattern=PHONE_PATTERN)]
ShortText = Annotated[str, Field(min_length=1, max_length=80)]

_STOP_WORDS = {"a", "an", "the", "and", "or", "for", "with", "under", "below", "less", "than",
               "over", "some", "any", "me", "show", "find", "i", "want", "need", "looking",
               "of", "in", "to", "my", "cheap", "best", "good"}


class Priority(StrEnum):
    """How urgent a ticket is; an Enum so that code and schema share one list."""

    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class SupportError(LabError):
    """A support request could not be carried out."""


class NotFound(SupportError, LookupError):
    """No record matches: the model sees this as an error result and can ask again."""


class SupportDesk:
    """The support desk over one SQLite file (created and seeded on first use)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else db.default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            if not db.is_seeded(conn):
                db.create_and_seed(conn)

    def _connect(self) -> _Connection:
        return _Connection(db.connect(self.path))

    def reset(self) -> None:
        """Back to the seed: every ticket and callback made since is gone."""
        with self._connect() as conn:
            db.create_and_seed(conn)

    def row_counts(self) -> dict[str, int]:
        """Rows per table (a quick way to see that a write happened, or did not)."""
        with self._connect() as conn:
            return db.row_counts(conn)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: equal snapshots mean nothing changed."""
        with self._connect() as conn:
            return db.snapshot(conn)

    def tickets(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM tickets ORDER BY id")]

    def callbacks(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            return [dict(r) for r in conn.execute("SELECT * FROM callbacks ORDER BY id")]

    # -- the domain functions (tools) -----------------------------------------------------------

    def get_order_status(self, order_id: OrderId) -> dict[str, Any]:
        """Look up an order's status, shipping details and items.

        Use it when a customer asks where an order is or when it will arrive.

        Args:
            order_id: The order number, ORD- followed by five digits (e.g. ORD-78432).
        """
        order_id = order_id.strip().upper()
        with self._connect() as conn:
            order = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
            if order is None:
                raise NotFound(f"No order {order_id}.", cause="no order has that number "
                               "(order numbers are ORD- and five digits)")
            items = conn.execute(
                "SELECT p.name, i.quantity FROM order_items i JOIN products p "
                "ON p.id = i.product_id WHERE i.order_id = ? ORDER BY p.name", (order_id,))
            return {
                "order_id": order["id"], "status": order["status"],
                "ordered_at": order["ordered_at"], "shipped_at": order["shipped_at"],
                "expected_delivery": order["expected_delivery"], "carrier": order["carrier"],
                "tracking": order["tracking"],
                "items": [{"product": r["name"], "quantity": r["quantity"]} for r in items],
            }

    def get_customer_info(
        self,
        customer_email: Email,
        customer_id: Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN)] | None = None,
    ) -> dict[str, Any]:
        """Look up a customer's account: name, phone, tier and their orders.

        Args:
            customer_email: The customer's email address.
            customer_id: The account id (CUST- and four digits), if the customer gave it.
        """
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM customers WHERE lower(email) = lower(?)",
                               (customer_email.strip(),)).fetchone()
            if row is None:
                raise NotFound(f"No customer with email {customer_email}.",
                               cause="no account uses that email address")
            if customer_id is not None and customer_id.upper() != row["id"]:
                raise NotFound(f"Customer id {customer_id} does not match {customer_email}.",
                               cause="the id belongs to another account, or to none")
            orders = conn.execute("SELECT id, status, ordered_at FROM orders WHERE "
                                  "customer_id = ? ORDER BY ordered_at DESC", (row["id"],))
            return {
                "customer_id": row["id"], "name": row["name"], "email": row["email"],
                "phone": row["phone"], "tier": row["tier"], "customer_since": row["since"],
                "orders": [dict(o) for o in orders],
            }

    def schedule_callback(
        self,
        customer_phone: Phone,
        issue_summary: ShortText,
        preferred_time: PreferredTime | None = None,
    ) -> dict[str, Any]:
        """Book a phone callback from a support agent (writes to the database).

        Args:
            customer_phone: The number to call back, e.g. 555-123-4567.
            issue_summary: What the customer needs help with, in a few words.
            preferred_time: Part of the day the customer prefers, if they said.
        """
        if not re.fullmatch(PHONE_PATTERN, customer_phone.strip()):
            raise SupportError(f"{customer_phone!r} is not a phone number.",
                               cause="a phone number is digits, e.g. 555-123-4567")
        with self._connect() as conn, db.transaction(conn):
            customer = conn.execute("SELECT id FROM customers WHERE phone = ?",
                                    (customer_phone.strip(),)).fetchone()
            cur = conn.execute(
                "INSERT INTO callbacks (customer_phone, customer_id, issue_summary, "
                "preferred_time, status, created_at) VALUES (?, ?, ?, ?, 'scheduled', ?)",
                (customer_phone.strip(), customer["id"] if customer else None,
                 issue_summary.strip(), preferred_time, _now()))
            callback_id = cur.lastrowid
        return {"callback_id": callback_id, "status": "scheduled",
                "customer_phone": customer_phone.strip(),
                "preferred_time": preferred_time or "first available",
                "known_customer": customer is not None}

    def search_products(
        self,
        query: Annotated[str, Field(min_length=1, max_length=60)],
        category: Category = "all",
        max_results: Annotated[int, Field(ge=1, le=10)] = 5,
        max_price: Annotated[float, Field(gt=0)] | None = None,
    ) -> dict[str, Any]:
        """Search the product catalogue by keywords, optionally by category and price.

        Args:
            query: Keywords, e.g. "wireless headphones" or "laptop".
            category: One category, or "all".
            max_results: How many products to return at most (1-10).
            max_price: Highest price in US dollars, e.g. 100 for "under $100".
        """
        words = [w for w in re.findall(r"[a-z0-9]+", query.lower())
                 if len(w) > 1 and w not in _STOP_WORDS and not w.isdigit()]
        stems = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words}
        sql = "SELECT * FROM products WHERE 1 = 1"
        params: list[Any] = []
        if category != "all":
            sql += " AND category = ?"
            params.append(category)
        if max_price is not None:
            sql += " AND price_cents <= ?"
            params.append(round(max_price * 100))
        with self._connect() as conn:
            rows = [dict(r) for r in conn.execute(sql, params)]
        scored = []
        for row in rows:
            text = f"{row['name']} {row['description']} {row['category']}".lower()
            score = sum(1 for s in stems if s in text)
            if score or not stems:
                scored.append((-score, row["price_cents"], row))
        scored.sort(key=lambda t: (t[0], t[1]))
        found = [{"product_id": r["id"], "name": r["name"], "category": r["category"],
                  "price_usd": r["price_cents"] / 100, "in_stock": r["stock"] > 0}
                 for _, _, r in scored[:max_results]]
        return {"query": query, "category": category, "count": len(found), "products": found}

    def create_ticket(
        self,
        customer_email: Email,
        subject: Annotated[str, Field(min_length=1, max_length=60)],
        description: ShortText,
        priority: Priority = Priority.normal,
    ) -> dict[str, Any]:
        """Open a support ticket for a customer (writes to the database).

        Args:
            customer_email: Email address of the customer's account.
            subject: One line: what the ticket is about.
            description: The problem in the customer's words.
            priority: How urgent it is.
        """
        priority = Priority(priority)
        with self._connect() as conn, db.transaction(conn):
            row = conn.execute("SELECT id FROM customers WHERE lower(email) = lower(?)",
                               (customer_email.strip(),)).fetchone()
            if row is None:
                raise NotFound(f"No customer with email {customer_email}.",
                               cause="no account uses that email address")
            cur = conn.execute(
                "INSERT INTO tickets (customer_id, subject, description, priority, status, "
                "created_at) VALUES (?, ?, ?, ?, 'open', ?)",
                (row["id"], subject.strip(), description.strip(), priority.value, _now()))
            ticket_id = cur.lastrowid
        return {"ticket_id": ticket_id, "status": "open", "priority": priority.value,
                "customer_id": row["id"]}

    def tool_functions(self) -> list[Any]:
        """The five domain functions, in the order the notebook presents them."""
        return [self.get_order_status, self.get_customer_info, self.schedule_callback,
                self.search_products, self.create_ticket]


WRITE_TOOLS = frozenset({"schedule_callback", "create_ticket"})
"""Domain functions that change the database: they pass the executor's confirmation."""


class _Connection:
    """A sqlite3 connection that closes on `with` exit (sqlite3's own only ends transactions)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()
