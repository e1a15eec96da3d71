"""A conversation as a file: JSON for tools, Markdown for people (ChatSession.export_*).

The JSON keeps everything needed to replay or audit the conversation: system prompt, sampling
settings, each turn with its status and the server's token counts and timings.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import ChatSession

FORMAT = "vllm-lab-conversation/1"


def conversation_dict(session: ChatSession) -> dict[str, Any]:
    turns = []
    for turn in session.history:
        stats = dataclasses.asdict(turn.stats) if turn.stats else None
        if stats is not None:
            stats["tokens_per_s"] = turn.stats.tokens_per_s  # type: ignore[union-attr]
        turns.append({"user": turn.user, "answer": turn.answer, "status": turn.status,
                      "model": turn.model, "stats": stats})
    return {
        "format": FORMAT,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": session.model,
        "base_url": session.base_url,
        "system_prompt": session.system_prompt,
        "settings": {"temperature": session.temperature, "top_p": session.top_p,
                     "max_tokens": session.max_tokens},
        "turns": turns,
    }


def to_json(session: ChatSession) -> str:
    return json.dumps(conversation_dict(session), indent=2, ensure_ascii=False)


def to_markdown(session: ChatSession) -> str:
    data = conversation_dict(session)
    settings = ", ".join(f"{k}={v}" for k, v in data["settings"].items())
    lines = [f"# Conversation with {data['model']}", "",
             f"*Exported {data['exported_at']} from {data['base_url']} ({settings}).*", ""]
    if data["system_prompt"].strip():
        lines += ["**System prompt:**", "", *[f"> {line}" for line in
                                              data["system_prompt"].splitlines()], ""]
    for number, turn in enumerate(session.history, 1):
        lines += [f"## {number}. You", "", turn.user, "",
                  f"### {turn.model or 'Assistant'}", "", turn.answer or "*(no answer)*", ""]
        if turn.stopped:
            lines += ["*[stopped]*", ""]
        if turn.stats is not None:
            lines += [f"<sub>{turn.stats.summary()}</sub>", ""]
    return "\n".join(lines).rstrip() + "\n"
