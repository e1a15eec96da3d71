"""Module 2 as a learner meets it: JupyterLab, run all cells, run a preset in the SchemaEditor."""

from __future__ import annotations

import pytest

from .harness import (
    ARTIFACTS,
    error_outputs,
    open_notebook,
    run_all_cells,
    screenshot,
    wait_until,
    widget_button,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

NOTEBOOK = "02_structured_outputs.ipynb"


def test_run_all_then_run_a_preset_in_the_schema_editor(jupyterlab, page):
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_all_cells(page, timeout_s=1200)
    screenshot(page, "module2-after-run-all")
    # Only the cell that fails on purpose (a malformed regex) shows an error, and it says where.
    errors = error_outputs(page)
    assert len(errors) == 1 and "InvalidRegex" in errors[0] and "position" in errors[0], errors

    preset = page.locator(".widget-dropdown:has(label:text-is('Preset')) select")
    preset.scroll_into_view_if_needed()
    widget = preset.locator("xpath=ancestor::div[contains(@class,'widget-vbox')][last()]")
    preset.select_option(label="Sentiment (choice)")
    # The editor now holds the preset's choices, and the live check accepts them.
    wait_until(lambda: "✔ one of 'positive'" in widget.inner_text(), 30, "the live check")
    widget_button(widget, "Run").click()
    wait_until(lambda: "Same prompt, unconstrained" in widget.inner_text(), 180, "both answers")
    widget.scroll_into_view_if_needed()
    screenshot(page, "module2-schema-editor")
    text = widget.inner_text()
    (ARTIFACTS / "module2-schema-editor.txt").write_text(text)
    constrained = text.split("With the constraint", 1)[1].split("Same prompt, unconstrained")[0]
    assert "✔ valid" in constrained, text
    assert any(label in constrained for label in ("positive", "negative", "neutral"))
    assert widget_button(widget, "Run").is_enabled()
