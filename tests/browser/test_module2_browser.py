"""Module 2 in a real browser: start the server, show the SchemaEditor, run a preset in it.

Only the cells the editor needs run: the imports, the server start (Run > Run All Above Selected
Cell) and the editor's own cell. nbval runs the whole notebook.
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

NOTEBOOK = "02_structured_outputs.ipynb"


def test_run_a_preset_in_the_schema_editor(jupyterlab, page):
    notebook = jupyterlab.root / NOTEBOOK
    open_notebook(page, jupyterlab, NOTEBOOK)
    run_up_to(page, notebook, 'PROFILE = lab_profile()', timeout_s=300)
    run_cell(page, notebook, "editor = SchemaEditor(srv)", timeout_s=120)
    screenshot(page, "module2-after-run-up-to-editor")
    # None of these cells fails, on purpose or not (the malformed regex is not among them).
    assert error_outputs(page) == []

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
