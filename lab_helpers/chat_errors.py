"""What goes wrong in a chat, as lab errors with the fix (raised by `ChatSession`)."""

from __future__ import annotations

from typing import Any

from .errors import LabError

RESTART_FIX = (
    "start the server again: `vllm-lab up` in a terminal (or server.start(chat_server()) in a "
    "notebook), then send the message again"
)


# -- errors ----------------------------------------------------------------------------------


class ChatError(LabError):
    """A chat request could not be made or answered."""


class ChatInputError(ChatError, ValueError):
    """The message or a setting is invalid; nothing was sent and the history is unchanged."""


class ContextLimitExceeded(ChatInputError):
    """The prompt plus max_tokens does not fit in the model's context (max_model_len)."""

    def __init__(self, what: str, *, prompt_tokens: int | None = None, limit: int | None = None,
                 **kwargs: str) -> None:
        self.prompt_tokens = prompt_tokens
        """The conversation's size in tokens as the server counted it (None: not counted)."""
        self.limit = limit
        super().__init__(what, **kwargs)


class ModelNotServed(ChatInputError):
    """The requested model is not served by the server nor by any running lab server."""

    def __init__(self, what: str, *, served: list[str], **kwargs: str) -> None:
        self.served = list(served)
        super().__init__(what, **kwargs)


class ChatBusy(ChatError):
    """A reply is still streaming."""


class ServerUnavailable(ChatError):
    """The server cannot be reached, or stopped answering mid-reply. The turn was rolled back."""

    def __init__(self, what: str, *, unsent: str = "", partial: str = "", **kwargs: str) -> None:
        self.unsent = unsent
        """The user's message, not in the history: send it again once the server is back."""
        self.partial = partial
        """What had streamed before the connection broke (discarded from the history)."""
        super().__init__(what, **kwargs)


def api_error_message(exc: Any) -> str:
    """The server's own reason from an openai APIError (vLLM puts it in the JSON body)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or body.get("error", {})
        if isinstance(message, dict):
            message = message.get("message")
        if message:
            return str(message)
    return str(getattr(exc, "message", exc))
