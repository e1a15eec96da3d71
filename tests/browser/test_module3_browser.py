"""Module 3 in a real browser: run the cells the tool transcript view needs, then read it.

Run > Run All Above Selected Cell runs the notebook through the view (the six requests it
shows), then the cell that adds the two-calls transcript to it runs on its own; the rest of the
notebook (tool_choice modes, writes, the evaluation) is nbval's.
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
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "03_tool_calling.ipynb"


def test_read_the_transcript_view(jupyterlab, page):
    notebook = jupyterlab.root / NOTEBOOK
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_up_to(page, notebook, "view = TranscriptView(transcripts)", timeout_s=600)
    run_cell(page, notebook, "multi = transcripts[5]", timeout_s=300)
    screenshot(page, "module3-after-run-up-to-view")
    assert error_outputs(page) == []  # no cell of this module fails, on purpose or not

    view = page.locator(".lab-tool-transcript").first
    view.scroll_into_view_if_needed()
    wait_until(lambda: "Customer:" in view.inner_text(), 30, "the transcript to render")
    # The notebook added two transcripts after the six requests: the view shows the newest.
    select = view.locator("select")
    labels = select.locator("option").all_inner_texts()
    select.select_option(label=labels[0])
    wait_until(lambda: "ORD-78432" in view.inner_text().split("Customer:", 1)[-1], 30,
          "the first request")
    text = view.inner_text()
    # The first request: the customer's message, a call with its arguments, the result from
    # the database, and the answer.
    assert "Customer: Where is my order ORD-78432?" in text
    assert "Tool call:" in text and "Result" in text and "Answer:" in text
    assert "tool_choice required" in text
    screenshot(page, "module3-transcript-first")

    # Pick "Thanks for your help today!" (auto): no tool was called.
    thanks = next(lb for lb in labels if "Thanks for your help" in lb.replace("\xa0", " "))
    select.select_option(label=thanks)
    wait_until(lambda: "No tool was called." in view.inner_text(), 30, "the Thanks transcript")
    assert "tool_choice auto" in view.inner_text()

    # The two-calls-in-one-turn transcript shows both calls and both results.
    copied = next(lb for lb in labels if "Repeat this text" in lb.replace("\xa0", " "))
    select.select_option(label=copied)
    wait_until(lambda: view.inner_text().count("Tool call:") >= 2, 30, "two calls")
    assert view.inner_text().count("[ok]") >= 2
    view.scroll_into_view_if_needed()
    screenshot(page, "module3-transcript-two-calls")
    (ARTIFACTS / "module3-transcript.txt").write_text(view.inner_text())
