"""System prompts to start from: the chat widget's preset picker and the notebooks use them.

A system prompt is sent, and counted as prompt tokens, with every request: keep them short.
On the 135M CPU model they steer tone and length a little and formats hardly at all (module 2
shows what guarantees a format: structured outputs).
"""

from __future__ import annotations

from .session import DEFAULT_SYSTEM_PROMPT

ACME_SUPPORT_AGENT = (
    "You are a helpful customer support assistant for ACME Corp. Be professional, "
    "empathetic and solution-oriented. Keep answers short."
)

SYSTEM_PRESETS: dict[str, str] = {
    "Default": DEFAULT_SYSTEM_PROMPT,
    "ACME support agent": ACME_SUPPORT_AGENT,
    "Concise": "Answer in at most two sentences. No preamble.",
    "JSON only": 'Reply with one JSON object and nothing else, e.g. {"answer": "..."}.',
    "Markdown formatter": "Answer in Markdown: a short heading, then bullet points; put any "
                          "code in fenced code blocks.",
    "No system prompt": "",
}
