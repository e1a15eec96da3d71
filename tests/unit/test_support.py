"""The ACME support backend: seed, reset, transactions, the domain functions (real SQLite)."""

from __future__ import annotations

import sqlite3

import pytest

from lab_helpers.support import NotFound, Priority, SupportDesk, db, default_db_path


@pytest.fixture
def desk(tmp_path) -> SupportDesk:
    return SupportDesk(tmp_path / "acme.sqlite")


def test_seed_holds_what_the_modules_talk_about(desk):
    seed = db.seed_data()
    assert desk.row_counts() == {
        "customers": len(seed["customers"]), "products": len(seed["products"]),
        "orders": len(seed["orders"]), "order_items": sum(len(o["items"]) for o in seed["orders"]),
        "tickets": len(seed["tickets"]), "callbacks": len(seed["callbacks"])}
    assert desk.get_customer_info("john.smith@email.com")["customer_id"] == "CUST-1001"
    assert {o["id"] for o in seed["orders"]} >= {"ORD-78432", "ORD-99001"}
    assert {p["category"] for p in seed["products"]} == set(db.CATEGORIES)
    module4 = {"SmartWatch Pro": 299, "Wireless Earbuds": 79, 'Tablet 10"': 449,
               "Robot Vacuum": 399, "Air Purifier": 199, "Smart Thermostat": 129}
    prices = {p["name"]: p["price"] for p in seed["products"]}
    assert {k: prices[k] for k in module4} == module4


def test_seed_is_deterministic(tmp_path):
    a, b = SupportDesk(tmp_path / "a.sqlite"), SupportDesk(tmp_path / "b.sqlite")
    assert a.snapshot() == b.snapshot()


def test_default_path_is_in_the_lab_home(lab_home):
    assert default_db_path() == lab_home / "acme_support.sqlite"
    desk = SupportDesk()
    assert desk.path == lab_home / "acme_support.sqlite" and desk.path.exists()


def test_order_status_and_items(desk):
    order = desk.get_order_status("ORD-78432")
    assert order["status"] == "shipped" and order["carrier"] == "UPS"
    assert any("Headphones" in i["product"] for i in order["items"])
    assert desk.get_order_status("ord-99001")["status"] == "processing"
    with pytest.raises(NotFound):
        desk.get_order_status("ORD-00000")


def test_customer_lookup(desk):
    info = desk.get_customer_info("John.Smith@email.com")
    assert info["name"] == "John Smith"
    assert {o["id"] for o in info["orders"]} == {"ORD-78432", "ORD-99001"}
    assert desk.get_customer_info("john.smith@email.com", "CUST-1001")["name"] == "John Smith"
    with pytest.raises(NotFound):
        desk.get_customer_info("john.smith@email.com", "CUST-1002")
    with pytest.raises(NotFound):
        desk.get_customer_info("nobody@example.com")


def test_search_products_by_words_category_and_price(desk):
    found = desk.search_products("wireless headphones", max_price=100)["products"]
    assert found and all(p["price_usd"] <= 100 for p in found)
    assert all("headphone" in p["name"].lower() or "earbud" in p["name"].lower()
               for p in found[:3])
    laptops = desk.search_products("laptop", category="electronics", max_results=10)
    assert {"UltraBook 14 Laptop", "ProBook 16 Laptop"} <= {p["name"] for p in laptops["products"]}
    sports = desk.search_products("headphones", category="sports")["products"]
    assert sports and all(p["category"] == "sports" for p in sports)
    assert len(desk.search_products("laptop", max_results=2)["products"]) == 2


def test_writes_are_recorded_and_reset_restores_the_seed(desk):
    seed = desk.snapshot()
    cb = desk.schedule_callback("555-123-4567", "billing question", "afternoon")
    assert cb["known_customer"] is True and cb["preferred_time"] == "afternoon"
    ticket = desk.create_ticket("john.smith@email.com", "Late order", "Where is it?",
                                Priority.high)
    assert ticket["priority"] == "high"
    assert desk.callbacks()[-1]["issue_summary"] == "billing question"
    assert desk.tickets()[-1]["customer_id"] == "CUST-1001"
    assert desk.snapshot() != seed
    desk.reset()
    assert desk.snapshot() == seed


def test_a_failing_write_leaves_nothing_behind(desk):
    before = desk.snapshot()
    with pytest.raises(NotFound):
        desk.create_ticket("nobody@example.com", "x", "y")
    # A constraint failure inside the transaction rolls back (priority must be in the list).
    with pytest.raises(sqlite3.IntegrityError), db.connect(desk.path) as conn:
        with db.transaction(conn):
            conn.execute("INSERT INTO callbacks (customer_phone, issue_summary, status, "
                         "created_at) VALUES ('555-000-0000', 'x', 'scheduled', 'now')")
            conn.execute("INSERT INTO tickets (subject, description, priority, status, "
                         "created_at) VALUES ('s', 'd', 'whenever', 'open', 'now')")
    assert desk.snapshot() == before


def test_sql_text_is_data_not_sql(desk):
    before = desk.snapshot()
    result = desk.search_products("x'; DROP TABLE orders; --")
    assert result["query"] == "x'; DROP TABLE orders; --"
    with pytest.raises(NotFound):
        desk.get_customer_info("a@b.co' OR '1'='1")
    assert desk.snapshot() == before


def test_a_second_desk_on_the_same_file_sees_the_writes(desk):
    desk.schedule_callback("555-999-0000", "new customer")
    other = SupportDesk(desk.path)
    assert other.callbacks()[-1]["customer_id"] is None
    assert other.row_counts() == desk.row_counts()
