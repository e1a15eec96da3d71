"""Issue 19, what a newcomer hit in module 1's chat widget: cut labels, a button without a
label, settings changed without a word, export links that looked like plain text.

Driven only through the widget's public surface (controls, status, downloads, session).
"""

from __future__ import annotations

import re

import pytest

from lab_helpers.chat import ChatSession
from lab_helpers.server import free_port
from lab_helpers.widgets import ChatWidget

MODEL = "smollm2-135m-instruct"


def widget_for(**settings: object) -> ChatWidget:
    """A widget on a session whose server is not running (nothing here sends)."""
    session = ChatSession(base_url=f"http://127.0.0.1:{free_port()}", api_key="k",
                          model=MODEL, **settings)  # type: ignore[arg-type]
    return ChatWidget(session, endpoints=[session.endpoint])


@pytest.mark.parametrize("name", ["temperature", "top_p", "max_tokens"])
def test_setting_labels_have_room_for_their_whole_name(name):
    control = getattr(widget_for().controls, name)
    assert control.description == name
    assert control.style.description_width == "initial"  # the default width cuts "temperat…"


def test_the_find_servers_button_says_what_it_does():
    refresh = widget_for().controls.refresh
    assert refresh.description.strip() and refresh.tooltip.strip()


@pytest.mark.parametrize("name, value, allowed, nearest", [
    ("temperature", 5.0, "0 to 2", 2.0),
    ("temperature", -1.0, "0 to 2", 0.0),
    ("top_p", 0.0, "0.01 to 1", 0.01),
])
def test_a_value_outside_the_slider_set_in_code_is_reported(name, value, allowed, nearest):
    widget = widget_for()
    getattr(widget.controls, name).value = value
    assert getattr(widget.controls, name).value == nearest
    assert getattr(widget.session, name) == nearest
    assert f"{value:g}" in widget.status and allowed in widget.status
    assert "outside" in widget.status


def test_a_typed_value_outside_the_range_is_reported_not_clamped_silently():
    widget = widget_for(temperature=0.7)
    widget.controls.temperature_box.value = 3.0  # typed in the browser's box
    assert widget.controls.temperature.value == 2.0 == widget.session.temperature
    assert widget.controls.temperature_box.value == 2.0
    assert "temperature 3" in widget.status and "0 to 2" in widget.status
    widget.controls.top_p_box.value = 0.5  # a value inside the range: taken as it is
    assert widget.session.top_p == 0.5 == widget.controls.top_p.value


def test_a_session_value_the_slider_cannot_show_is_reported_at_once():
    widget = widget_for(top_p=0.001)
    assert widget.controls.top_p.value == 0.01 == widget.session.top_p
    assert "top_p 0.001" in widget.status and "0.01 to 1" in widget.status


def test_max_tokens_below_one_is_refused_with_the_rule():
    widget = widget_for(max_tokens=64)
    widget.controls.max_tokens.value = 0
    assert widget.controls.max_tokens.value == 64 == widget.session.max_tokens
    assert "1 or more" in widget.status and "Traceback" not in widget.status
    widget.controls.max_tokens.value = 2_000_000  # no silent upper cap either
    assert widget.session.max_tokens == 2_000_000


def test_export_links_look_like_buttons_to_click():
    widget = widget_for()
    widget.controls.export.click()
    links = re.findall(r"<a [^>]*>", widget.downloads)
    assert len(links) == 2
    for link in links:
        assert "download=" in link
        style = re.search(r'style="([^"]*)"', link)
        assert style and "border:" in style.group(1) and "padding:" in style.group(1)
        assert "cursor:pointer" in style.group(1)
