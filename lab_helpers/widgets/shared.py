"""What every lab widget shares: errors and notes as HTML, callbacks that never raise, and the
`Controls` a widget exposes to scripts and tests.

A widget shows a failure in its own output area as what happened, the likely cause and the
fix (a `LabError`'s fields), never as a traceback: `captured` wraps a callback so any exception
goes to the widget's `_show_error`.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from ..errors import LabError

F = TypeVar("F", bound=Callable[..., Any])


def error_html(exc: BaseException) -> str:
    """An error as a short HTML message: what happened, the likely cause, the fix."""
    if isinstance(exc, LabError):
        parts = [f"<b>{html.escape(exc.what)}</b>"]
        if exc.cause:
            parts.append(f"Likely cause: {html.escape(exc.cause)}")
        if exc.fix:
            parts.append(f"Fix: <code>{html.escape(exc.fix)}</code>")
    else:
        parts = [f"<b>Unexpected error: {html.escape(type(exc).__name__)}: "
                 f"{html.escape(str(exc))}</b>",
                 "Fix: try again; if it persists, look at the server log (vllm-lab logs)."]
    return ('<div style="color:#a40000;white-space:pre-wrap">' + "<br>".join(parts)
            + "</div>")


def note_html(text: str, color: str = "#555") -> str:
    return f'<div style="color:{color};white-space:pre-wrap">{html.escape(text)}</div>'


def captured(method: F) -> F:
    """Catch any exception of a widget callback and show it with the object's `_show_error`."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - shown in the widget instead of a traceback
            self._show_error(exc)
            return None

    return wrapper  # type: ignore[return-value]


class Controls(SimpleNamespace):
    """A widget's inputs by name, as a person uses them: set a `value`, `click()` a button,
    read `disabled`. Scripts and tests drive a widget through these, never its internals."""
