"""How the chat widget shows turns, answers, metrics and the export links (HTML)."""

from __future__ import annotations

import html

from ..chat import ChatTurn
from .markdown_html import download_link, render_markdown

STOPPED = " <i>[stopped]</i>"


def stats_html(turn: ChatTurn) -> str:
    """The server's numbers for one answer, as a grey line ("" when there are none)."""
    if turn.stats is None:
        return ""
    return (f'<div style="color:#777;font-size:85%">{html.escape(turn.stats.summary())}'
            "</div>")


def turn_html(turn: ChatTurn) -> str:
    """A finished turn of the history."""
    mark = STOPPED if turn.stopped else ""
    return (
        f'<div style="margin:4px 0"><b>You:</b> '
        f'<span style="white-space:pre-wrap">{html.escape(turn.user)}</span></div>'
        f'<div style="margin:4px 0 10px 0"><b>{html.escape(turn.model or "Assistant")}:</b> '
        f"{render_markdown(turn.answer)}{mark}{stats_html(turn)}"
        "</div>"
    )


def answer_html(model: str, user: str, text: str, stopped: bool = False) -> str:
    """The turn being answered: the user's message at once, the answer as it streams."""
    mark = STOPPED if stopped else ""
    return (f'<div style="margin:4px 0"><b>You:</b> '
            f'<span style="white-space:pre-wrap">{html.escape(user)}</span></div>'
            f'<div style="margin:4px 0"><b>{html.escape(model)}:</b> '
            f"{render_markdown(text)}{mark}</div>")


def downloads_html(json_text: str, markdown_text: str, stamp: str) -> str:
    """The conversation as two download buttons (links styled as buttons)."""
    return (
        '<span style="margin-right:8px">Download the conversation:</span>'
        + download_link(json_text, f"conversation-{stamp}.json", "application/json", "JSON")
        + download_link(markdown_text, f"conversation-{stamp}.md", "text/markdown", "Markdown")
    )
