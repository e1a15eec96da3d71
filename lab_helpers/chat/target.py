"""Where a chat's requests go: the endpoint (server, key, model), its connection, and what the
server says about its models (names, context lengths, token counts).

`ChatTarget` is the part of a `ChatSession` that changes when the learner switches server or
model; the session keeps the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .. import server
from ..connect import Connection, ServerUnavailable, not_served
from ..models import BUNDLED

if TYPE_CHECKING:
    from ..server import Server


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: an OpenAI-compatible base URL (without /v1), its key and a model."""

    base_url: str
    api_key: str
    model: str
    server_name: str | None = None
    """The lab server's name, if it is one: its key is re-read on every request."""

    @classmethod
    def from_server(cls, srv: Server) -> Endpoint:
        return cls(srv.base_url, srv.api_key, srv.model_name, srv.name)

    @property
    def label(self) -> str:
        where = self.server_name or self.base_url
        return f"{self.model} ({where})"


def resolve_endpoint(target: Server | str | Endpoint, model: str | None) -> Endpoint:
    """A Server, a running lab server's name or an Endpoint, optionally with another model."""
    if isinstance(target, Endpoint):
        endpoint = target
    else:
        endpoint = Endpoint.from_server(server.get(target) if isinstance(target, str) else target)
    return replace(endpoint, model=model) if model else endpoint


def lab_endpoints() -> list[Endpoint]:
    """Running lab servers that can chat (embedding servers are left out)."""
    out = []
    for runtime in server.available_runtimes():
        for info in runtime.list():
            spec = BUNDLED.get(info.model_name)
            if info.state != "running" or (spec is not None and spec.kind != "chat"):
                continue
            out.append(Endpoint.from_server(server.Server(runtime, info)))
    return out


class ChatTarget:
    """One endpoint and its connection, with the context lengths its server reported.

    A lab server is reached by name (its key file, re-read after a restart); any other
    OpenAI-compatible endpoint with the key given.
    """

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self._endpoint = endpoint
        self.limits: dict[str, int] = {}
        """model -> max_model_len, as GET /v1/models reported it (cached)."""
        if endpoint.server_name:
            self.connection = Connection(endpoint.base_url, server_name=endpoint.server_name,
                                         api_key=endpoint.api_key, timeout=timeout)
        else:
            self.connection = Connection(
                endpoint.base_url, api_key=endpoint.api_key, timeout=timeout,
                key_hint="for a lab server use ChatSession(<server name>): it reads the "
                         "current key")

    @property
    def endpoint(self) -> Endpoint:
        """Where requests go now (a replaced lab server: its new address and key)."""
        return replace(self._endpoint, base_url=self.connection.base_url,
                       api_key=self.connection.api_key)

    @property
    def model(self) -> str:
        return self._endpoint.model

    def served_models(self) -> dict[str, int | None]:
        """Models the server serves, with their max_model_len (GET /v1/models)."""
        models = self.connection.served_models()
        self.limits.update({name: int(limit) for name, limit in models.items() if limit})
        return models

    def max_model_len(self) -> int | None:
        """The model's context length in tokens, as the server reports it (cached)."""
        if self.model not in self.limits:
            served = self.served_models()
            if self.model not in served:
                raise not_served(self.model, served)
        return self.limits.get(self.model)

    def find(self, model: str) -> Endpoint:
        """`model` on this server if it serves it, else on a running lab server that does;
        ModelNotServed (listing what is served) if none does."""
        try:
            here = self.served_models()
        except ServerUnavailable:
            here = {}
        if model in here:
            return replace(self.endpoint, model=model)
        lab = lab_endpoints()
        for endpoint in lab:
            if endpoint.model == model:
                return endpoint
        raise not_served(model, dict.fromkeys(list(here) + [e.model for e in lab]))

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        """Tokens of a prompt, counted by the server (POST /tokenize with the chat template)."""
        payload = {"model": self.model, "messages": messages, "add_generation_prompt": True}
        return int(self.connection.post("/tokenize", payload).json()["count"])
