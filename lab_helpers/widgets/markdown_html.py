"""Model answers as HTML: Markdown rendered safely, and conversation files to download.

markdown-it-py (CommonMark) with raw HTML off: whatever the model writes, tags in it are
shown as text, never run in the notebook page. Fenced code becomes <pre><code>.
"""

from __future__ import annotations

import base64
import functools
import html

CODE_STYLE = ("<style>.vllm-lab-md pre{background:#f6f8fa;padding:6px;border-radius:4px;"
              "overflow-x:auto}.vllm-lab-md p{margin:2px 0}</style>")


# A download link that looks like what it is: a button to click, not plain text.
LINK_BUTTON_STYLE = ("display:inline-block;margin:2px 8px 2px 0;padding:3px 12px;"
                     "border:1px solid #1976d2;border-radius:4px;background:#e3f2fd;"
                     "color:#0d47a1;text-decoration:underline;cursor:pointer")


@functools.cache
def _renderer():  # -> markdown_it.MarkdownIt
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False})


def render_markdown(text: str) -> str:
    """Markdown to HTML, raw HTML escaped; wrapped so the lab's code-block style applies."""
    return f'<div class="vllm-lab-md">{_renderer().render(text)}</div>'


def download_link(data: str, filename: str, mime: str, label: str) -> str:
    """An <a download> with the file inside (a data: URL): no server round trip, no file left
    behind in the notebook's directory."""
    payload = base64.b64encode(data.encode()).decode()
    return (f'<a download="{html.escape(filename)}" href="data:{mime};base64,{payload}" '
            f'title="download {html.escape(filename)}" style="{LINK_BUTTON_STYLE}">'
            f"&#x2B07; {html.escape(label)}</a>")
