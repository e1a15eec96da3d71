"""Module 1 as a learner meets it in JupyterLab: run the cells up to the chat widget, chat in it.

Only the cells above the widget run (Run > Run All Above Selected Cell): the imports, the checks,
the server start and the first chat turn the widget shows. nbval runs the whole notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .harness import (
    ARTIFACTS,
    error_outputs,
    open_notebook,
    run_up_to,
    screenshot,
    wait_until,
    widget_button,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "01_deploy_and_chat.ipynb"


def test_run_up_to_the_widget_then_chat_in_it(jupyterlab, page):
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_up_to(page, jupyterlab.root / NOTEBOOK, "widget = ChatWidget(chat)", timeout_s=600)
    screenshot(page, "module1-after-run-up-to-widget")
    # Only the cell that fails on purpose shows an error, and it says what to do: a port clash
    # (the hub id on the offline cpu profile and the context limit are optional sections below
    # the widget).
    errors = error_outputs(page)
    (ARTIFACTS / "module1-errors.txt").write_text("\n\n-----\n\n".join(errors))
    kinds = sorted(next((k for k in ("PortInUse", "ModelNotFound") if k in e), "unexpected")
                   for e in errors)
    assert kinds == ["PortInUse"], errors
    assert all("Fix:" in e for e in errors), errors

    box = page.get_by_placeholder("Ask something, then click Send")
    box.scroll_into_view_if_needed()
    widget = box.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][last()]")
    # The notebook chatted once before showing the widget: that turn is in its history.
    wait_until(lambda: "completion =" in widget.inner_text(), 30, "the widget's history")
    before = widget.inner_text().count("completion =")

    # A system-prompt preset: the prompt box takes its text.
    widget.locator(".widget-dropdown", has_text="Preset").locator("select").select_option(
        "Markdown formatter")
    system = widget.locator(".widget-textarea", has_text="System").locator("textarea")
    wait_until(lambda: "Markdown" in system.input_value(), 10, "the preset's system prompt")

    question = "Give two tips for tracking an ACME order, as a bullet list."
    box.fill(question)
    widget_button(widget, "Send").click()
    wait_until(lambda: question in widget.inner_text(), 30, "the question to show")
    # The answer streams in, then a line with the server's own counts appears under it.
    wait_until(lambda: widget.inner_text().count("completion =") > before, 120, "the metrics line")
    widget.scroll_into_view_if_needed()
    screenshot(page, "module1-chat-widget")
    text = widget.inner_text()
    (ARTIFACTS / "module1-chat-widget.txt").write_text(text)
    answer = text.split(question, 1)[1]
    assert "TTFT" in answer and "tok/s" in answer and "prompt +" in answer
    assert widget_button(widget, "Send").is_enabled()
    # The answer is rendered Markdown: block elements in the page, no fence marks as text.
    rendered = widget.locator(".vllm-lab-md").last
    assert rendered.locator("p, ul, ol, pre, h1, h2, h3, blockquote").count() >= 1
    assert "```" not in rendered.inner_text()

    # Export: the widget offers the conversation as files; the JSON one holds this turn.
    widget_button(widget, "Export").click()
    link = widget.get_by_role("link", name="JSON")
    link.wait_for(timeout=10_000)
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    data = json.loads(Path(download.path()).read_text())
    assert any(turn["user"] == question for turn in data["turns"])
    assert data["system_prompt"].startswith("Answer in Markdown")
    assert widget.get_by_role("link", name="Markdown").count() == 1
