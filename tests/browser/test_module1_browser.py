"""Module 1 as a learner meets it: JupyterLab, run all cells, chat in the widget."""

from __future__ import annotations

import time

import pytest

from .harness import (
    ARTIFACTS,
    error_outputs,
    open_notebook,
    run_all_cells,
    screenshot,
    widget_button,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "01_deploy_and_chat.ipynb"


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_run_all_then_chat_in_the_widget(jupyterlab, page):
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_all_cells(page, timeout_s=900)
    screenshot(page, "module1-after-run-all")
    # Only the cell that fails on purpose (a port clash) shows an error, and it says what to do.
    errors = error_outputs(page)
    assert len(errors) == 1 and "PortInUse" in errors[0] and "Fix:" in errors[0], errors

    box = page.get_by_placeholder("Ask something, then click Send")
    box.scroll_into_view_if_needed()
    widget = box.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][last()]")
    # The notebook chatted once before showing the widget: that turn is in its history.
    _wait(lambda: "completion tokens" in widget.inner_text(), 30, "the widget's history")
    before = widget.inner_text().count("completion tokens")

    question = "Hello! Can you help me track my ACME order?"
    box.fill(question)
    widget_button(widget, "Send").click()
    _wait(lambda: question in widget.inner_text(), 30, "the question to show")
    # The answer streams in, then a line with the server's own counts appears under it.
    _wait(lambda: widget.inner_text().count("completion tokens") > before, 120,
          "the metrics line")
    widget.scroll_into_view_if_needed()
    screenshot(page, "module1-chat-widget")
    text = widget.inner_text()
    (ARTIFACTS / "module1-chat-widget.txt").write_text(text)
    answer = text.split(question, 1)[1]
    assert "TTFT" in answer and "tok/s" in answer and "prompt +" in answer
    assert widget_button(widget, "Send").is_enabled()
