"""The chat widget's sampling settings: each with its full name, a slider to drag, a box to
type in, and the allowed range written next to it.

ipywidgets' own sliders and bounded boxes move a value outside their range to the nearest end
without a word, in the browser (the typed readout) and in Python (`slider.value = 5`). Here
the slider has no typed readout; the box beside it takes any number, and a value outside the
range is reported through `on_outside` (the chat widget shows it in its message line) before
the slider moves it to the nearest allowed value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import validate

# Room for the whole name ("temperature", "max_tokens"): the default width cuts it.
LABEL_STYLE = {"description_width": "initial"}

OutsideFn = Callable[[str], None]


def _range_text(low: float, high: float) -> str:
    return f"{low:g} to {high:g}"


class ReportingSlider(widgets.FloatSlider):
    """A FloatSlider that says so when it is given a value outside min..max.

    The value still ends at the nearest allowed value (a slider cannot show another one), but
    `on_outside` gets a sentence naming the value, the allowed range and where it ended.
    """

    def __init__(self, *, on_outside: OutsideFn | None = None, **kwargs: Any) -> None:
        self.on_outside = on_outside
        super().__init__(**kwargs)

    @validate("value")
    def _validate_value(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if self.min <= value <= self.max:
            return value
        nearest = min(max(value, self.min), self.max)
        if self.on_outside is not None:
            self.on_outside(
                f"{self.description} {value:g} is outside the allowed range "
                f"{_range_text(self.min, self.max)}: it is set to {nearest:g}, the nearest "
                "allowed value.")
        return nearest


class SliderSetting(widgets.HBox):
    """name · slider · box to type in · "low to high"."""

    def __init__(self, name: str, *, low: float, high: float, step: float, value: float,
                 on_outside: OutsideFn, tooltip: str = "") -> None:
        tip = f"{tooltip} (allowed: {_range_text(low, high)})".strip()
        self.slider = ReportingSlider(
            description=name, min=low, max=high, step=step, readout=False, value=low,
            style=LABEL_STYLE, tooltip=tip, layout={"width": "260px"}, on_outside=on_outside)
        self.slider.value = value  # after min/max are set: a value outside them is reported
        self.box = widgets.FloatText(value=self.slider.value, step=step, tooltip=tip,
                                     layout={"width": "72px"})
        self.slider.observe(self._on_slider, names="value")
        self.box.observe(self._on_box, names="value")
        allowed = widgets.HTML(f'<span style="color:#777;font-size:85%">'
                               f"{_range_text(low, high)}</span>")
        super().__init__([self.slider, self.box, allowed],
                         layout={"align_items": "center", "margin": "0 16px 0 0"})

    def _on_slider(self, change: dict[str, Any]) -> None:
        if self.box.value != change["new"]:
            self.box.value = change["new"]

    def _on_box(self, change: dict[str, Any]) -> None:
        self.slider.value = change["new"]  # outside the range: reported, then the nearest end
        if self.box.value != self.slider.value:
            self.box.value = self.slider.value


def max_tokens_box(value: int, tooltip: str) -> widgets.IntText:
    """max_tokens as a plain whole-number box: the chat widget checks it (1 or more) and says
    so, instead of a bounded box that changes a typed 0 to 1 without a word."""
    return widgets.IntText(description="max_tokens", value=value, style=LABEL_STYLE,
                           tooltip=tooltip, layout={"width": "190px"})
