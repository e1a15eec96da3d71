"""Chat with a lab server (module 1): the session, its turns, exports, presets and logprobs.

    from lab_helpers.chat import ChatSession
    chat = ChatSession()                  # the "chat" server
    for piece in chat.send("Where is my order?"):
        print(piece, end="")

- `session`: ChatSession, the conversation and its requests (through `lab_helpers.connect`);
- `target`: where requests go (endpoint, connection, the served models and their context);
- `turns`: what a chat holds (turns, reply statistics) and what is refused before anything is
  sent;
- `export`: a conversation as Markdown or JSON;
- `presets`: system prompts for the chat widget and notebooks;
- `logprobs`: the alternatives behind each sampled token.

May import: `connect`, `server`, `models`, `errors` (never the widgets, which are views on it).
"""

from __future__ import annotations

from .session import (
    DEFAULT_SERVER,
    DEFAULT_SYSTEM_PROMPT,
    RESTART_FIX,
    ChatBusy,
    ChatError,
    ChatInputError,
    ChatSession,
    ChatTurn,
    ContextLimitExceeded,
    Endpoint,
    ModelNotServed,
    ReplyStats,
    ServerUnavailable,
    TurnStatus,
    api_error_message,
    validate_settings,
)

__all__ = [
    "DEFAULT_SERVER", "DEFAULT_SYSTEM_PROMPT", "RESTART_FIX", "ChatBusy", "ChatError",
    "ChatInputError", "ChatSession", "ChatTurn", "ContextLimitExceeded", "Endpoint",
    "ModelNotServed", "ReplyStats", "ServerUnavailable", "TurnStatus", "api_error_message",
    "validate_settings",
]
