"""Module 4 in a real browser: show the agent chat, then approve one tool call and deny another.

Only the cells the chat needs run: the notebook through the check that its three MCP servers
answer (Run > Run All Above Selected Cell), then the chat's own cell. The scripted agent runs
between them are nbval's.
"""

from __future__ import annotations

import pytest

from .harness import (
    ARTIFACTS,
    error_outputs,
    open_notebook,
    run_cell,
    run_up_to,
    screenshot,
    wait_until,
    widget_button,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "04_mcp_agents.ipynb"
TOOL = "acme__create_ticket"


def _ask_and_decide(page, chat, message: str, button: str) -> str:
    chat.locator("textarea").first.fill(message)
    chat.locator("select").first.select_option(label=TOOL)
    widget_button(chat, "Send").click()
    pending = chat.locator(".approval-pending")

    def waiting() -> bool:
        """A card is up; an error the widget shows ends the wait at once, with its text."""
        text = chat.inner_text()
        assert "Likely cause" not in text and "Unexpected error" not in text, text
        return pending.count() > 0

    wait_until(waiting, 300, "the call to wait for approval")
    card = pending.first.inner_text()
    assert "acme" in card and "create_ticket" in card and "customer_email" in card
    screenshot(page, f"module4-pending-{button.lower()}")
    widget_button(chat, button).click()
    wait_until(lambda: chat.locator(".approval-pending").count() == 0, 30, "the card to go")
    return card


def test_approve_one_call_and_deny_another(jupyterlab, page):
    notebook = jupyterlab.root / NOTEBOOK
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_up_to(page, notebook, "assert all(bridge.ping(", timeout_s=300)
    run_cell(page, notebook, "ui_gate = ApprovalGate(", timeout_s=120)
    screenshot(page, "module4-after-run-up-to-chat")
    assert error_outputs(page) == []

    chat = page.locator(".lab-agent-chat").first
    chat.scroll_into_view_if_needed()
    assert "No tool call is waiting" in chat.inner_text()

    _ask_and_decide(page, chat, "Open a ticket for john.smith@email.com: my order is late.",
                    "Approve")
    wait_until(lambda: "[ok]" in chat.inner_text(), 300, "the approved call's result")
    first = chat.inner_text()
    assert "acme__create_ticket" in first and "ticket_id" in first
    screenshot(page, "module4-approved")

    _ask_and_decide(page, chat, "Open a ticket for john.smith@email.com: refund me twice.",
                    "Deny")
    wait_until(lambda: "[denied]" in chat.inner_text(), 300, "the denied call's result")
    second = chat.inner_text()
    assert "denied by the user" in second
    assert "acme/create_ticket: approve" in second and "acme/create_ticket: deny" in second
    chat.scroll_into_view_if_needed()
    screenshot(page, "module4-denied")
    (ARTIFACTS / "module4-agent-chat.txt").write_text(second)
