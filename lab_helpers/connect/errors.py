"""The lab's errors for a request to a server, and `translate`, the one translator that turns
every `openai` and `httpx` failure into one of them (what failed, the likely cause, the fix).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import openai

from ..errors import LabError
from ..server.room_settings import joined_room, key_refused_fix, unreachable_fix

DEFAULT_SERVER = "chat"
Hint = tuple[str, str]
"""(cause, fix) for a request the server rejects: the caller knows what was in it."""

RESTART_FIX = (
    "start the server again: `vllm-lab up` in a terminal (or server.start(chat_server()) in a "
    "notebook), then try again"
)
REJECTED: Hint = (
    "the request is invalid for this server (a setting out of range, or a feature it does "
    "not support)",
    "change what the server names, then send again",
)


# -- errors ------------------------------------------------------------------------------------


class ServerRequestError(LabError):
    """A request to a server failed (the base of the errors below)."""


class ServerUnavailable(ServerRequestError):
    """The server cannot be reached, timed out, failed (5xx) or stopped answering mid-answer."""

    def __init__(self, what: str, *, unsent: str = "", partial: str = "", **kwargs: str) -> None:
        self.unsent = unsent
        """The user's message that was not answered: send it again once the server is back."""
        self.partial = partial
        """What had streamed before the connection broke."""
        super().__init__(what, **kwargs)


class KeyRejected(ServerRequestError):
    """The server refused the API key (401), also after its key file was read again."""


class RequestRejected(ServerRequestError, ValueError):
    """The server refused this request (4xx): `reason` is the server's own message."""

    def __init__(self, what: str, *, reason: str, status: int | None = None,
                 **kwargs: str) -> None:
        self.reason = reason
        self.status = status
        super().__init__(what, **kwargs)


class ModelNotServed(RequestRejected):
    """The requested model is not served (by this server, or by any running lab server)."""

    def __init__(self, what: str, *, served: Iterable[str], **kwargs: str) -> None:
        self.served = list(served)
        super().__init__(what, reason=what, status=404, **kwargs)


def not_served(model: str, served: Iterable[str], where: str = "") -> ModelNotServed:
    """ModelNotServed listing what is served (so the learner can pick one)."""
    names = list(served)
    at = f" at {where}" if where else ""
    return ModelNotServed(
        f"Model {model!r} is not served{at}. Served models: {', '.join(names) or 'none'}.",
        served=names, fix="pick one of those, or start a server for this model (vllm-lab up)")


def restart_fix(name: str | None) -> str:
    """How to bring a stopped server back: the chat server by its command, others by name;
    the joined room's server is the instructor's to start."""
    room = joined_room() if name else None
    if room is not None and room.server == name:
        return unreachable_fix(room)
    if name in (None, DEFAULT_SERVER):
        return RESTART_FIX
    return (f"start the server again (vllm-lab up, or server.start(...) with name={name!r} in a "
            "notebook), then try again")


# -- an answer that ended without its end ---------------------------------------------------

FINISHED = ("stop", "length", "tool_calls", "repetition", "content_filter")
"""Finish reasons of an answer that came to its end (vLLM 0.32 adds "repetition"); vLLM's
other two, "abort" and "error", and no finish reason at all mean the answer was cut off."""


class AnswerCut(Exception):
    """A streamed answer ended without a finish reason of a complete answer (see `FINISHED`).

    vLLM aborts the answers it is generating when it shuts down: depending on timing the
    client gets the last chunk with finish_reason "abort", and the stream then ends cleanly,
    with no connection error. `translate` makes it a ServerUnavailable like a broken stream.
    """

    def __init__(self, finish_reason: str | None) -> None:
        self.finish_reason = finish_reason
        # the server's text, shown in the lab's error: a short one only (any server may lie)
        super().__init__(f"finish_reason {finish_reason[:40]!r}" if finish_reason
                         else "the stream ended without a finish reason")


def require_finished(finish_reason: str | None) -> None:
    """Raise AnswerCut unless a streamed answer's last finish reason says it is complete."""
    if finish_reason not in FINISHED:
        raise AnswerCut(finish_reason)


# -- the translator ----------------------------------------------------------------------------


def api_error_message(exc: Any) -> str:
    """The server's own reason from an openai APIError (vLLM puts it in the JSON body)."""
    return _reason(getattr(exc, "body", None)) or str(getattr(exc, "message", exc))


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(message, dict):
            message = message.get("message")
        if message:
            return str(message)
    return ""


def status_of(exc: BaseException) -> tuple[int | None, str]:
    """(HTTP status, the server's reason) of a failed response; (None, "") for any other
    failure. Covers the openai SDK's errors and the lab's own httpx requests."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code, api_error_message(exc)
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            reason = _reason(response.json())
        except ValueError:
            reason = ""
        return response.status_code, reason or response.text[:200] or response.reason_phrase
    return None, ""


def translate(exc: BaseException, *, label: str, server_name: str | None = None,
              what: str = "the request", rejected: Hint | None = None, key_hint: str = "",
              unsent: str = "", partial: str = "") -> LabError:
    """The lab's error for a failed request to `label`. See the module doc for the classes.

    `what` names the request in messages ("the json constraint", "round 2 of the tool loop");
    `rejected` is (cause, fix) when the server refuses it; `key_hint` the fix for a key given
    by hand that is refused; `unsent`/`partial` travel on ServerUnavailable (see ChatSession).
    """
    if isinstance(exc, LabError):
        if isinstance(exc, ServerUnavailable) and unsent and not exc.unsent:
            exc.unsent = unsent  # raised before sending (the server was not found again)
        return exc
    status, reason = status_of(exc)
    down = {"unsent": unsent, "partial": partial,
            "details": "Your message was not added to the history: send it again." if unsent
            else ""}
    # The label at the start of a sentence; a URL keeps its case ("http://...", not "Http").
    who = label if "://" in label else label[:1].upper() + label[1:]
    if status == 401:
        room = joined_room() if server_name else None
        if room is not None and room.server == server_name:
            return KeyRejected(f"{who} (the room's server) refused your key (401).",
                               cause="the instructor revoked it or gave you a new one",
                               fix=key_refused_fix(room))
        if server_name:
            return KeyRejected(
                f"{who} refused the API key (401), also the one just read again from its "
                "key file.",
                cause="the server was not started by this lab home (another lab or program on "
                      "its port), or its key file was replaced by hand",
                fix=f"restart it: vllm-lab down {server_name}, then start it again "
                    "(vllm-lab up)")
        return KeyRejected(
            f"{who} refused the API key (401).",
            cause="no key, or the key of another server (a restart writes a new one)",
            fix=key_hint or "connect by the lab server's name, which reads its current key: "
                            "e.g. ChatSession(\"chat\")")
    if status is not None and 400 <= status < 500:
        cause, fix = rejected or REJECTED
        return RequestRejected(f"The server rejected {what}: {reason}", reason=reason,
                               status=status, cause=cause, fix=fix)
    if status is not None:
        return ServerUnavailable(
            f"{who} answered {what} with an error ({status}): {reason}",
            cause="the server failed on this request (its log says why), or is shutting down",
            fix=f"look at the server log (vllm-lab logs {server_name or DEFAULT_SERVER}), "
                "then try again", **down)
    kind = type(exc).__name__
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        return ServerUnavailable(
            f"{who} did not answer {what} in time ({kind}).",
            cause="the server is overloaded (requests queue on a busy CPU) or stuck",
            fix="check it with `vllm-lab status`; try again when it is less busy, or pass a "
                "longer timeout=", **down)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        reading = what.startswith("GET /")  # the lab's own reads (/metrics, /v1/models)
        place = f"read {label}{what[4:]}" if reading else f"reach {label}"
        said = (f"{who} stopped answering mid-answer ({kind})." if partial
                else f"Cannot {place}: the server does not answer ({kind}).")
        return ServerUnavailable(said, cause="the server was stopped, crashed, or is still "
                                             "starting", fix=restart_fix(server_name), **down)
    if isinstance(exc, AnswerCut):
        said = (f"{who} stopped answering mid-answer ({exc})." if partial
                else f"{who} ended {what} without an answer ({exc}).")
        return ServerUnavailable(
            said, cause="the server is shutting down (vLLM aborts the answers it is "
                        "generating), or its engine failed on this request (its log says which: "
                        f"vllm-lab logs {server_name or DEFAULT_SERVER})",
            fix=restart_fix(server_name), **down)
    if isinstance(exc, openai.APIError):  # an error event in a stream (vLLM stopping), ...
        said = (f"{who} stopped answering mid-answer: {api_error_message(exc)}" if partial
                else f"{who} failed during {what}: {api_error_message(exc)}")
        return ServerUnavailable(
            said, cause="the server is shutting down, or its engine failed (its log says "
                        f"which: vllm-lab logs {server_name or DEFAULT_SERVER})",
            fix=restart_fix(server_name), **down)
    return ServerRequestError(f"{what[:1].upper()}{what[1:]} to {label} failed: {kind}: {exc}",
                              fix="try again; if it keeps failing, look at the server log "
                                  "(vllm-lab logs)")
