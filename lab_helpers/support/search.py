"""A small semantic search over ACME's FAQ with an embeddings server: the second model's job.

The index keeps one connection to the embeddings server (lab_helpers.connect), so a query
after the server was replaced re-reads its key on the 401 and goes through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np

from ..connect import Connection


def acme_faq() -> list[dict[str, str]]:
    """ACME's FAQ: question/answer pairs shipped with the lab."""
    return json.loads(files("lab_helpers.data").joinpath("acme_faq.json").read_text())


@dataclass(frozen=True)
class Hit:
    score: float
    text: str


class SemanticIndex:
    """Texts embedded once; queries ranked by cosine similarity."""

    def __init__(self, embed_server: Any, texts: list[str]) -> None:
        """`embed_server`: a running embeddings server (a lab Server, or anything with
        base_url, api_key and model_name)."""
        self._model = embed_server.model_name
        self._conn = Connection.of(embed_server)
        self.texts = list(texts)
        self._vectors = self._embed(self.texts)

    @property
    def connection(self) -> Connection:
        """How queries reach the embeddings server (lab_helpers.connect)."""
        return self._conn

    def _embed(self, texts: list[str]) -> np.ndarray:
        result = self._conn.request(
            lambda client: client.embeddings.create(model=self._model, input=texts),
            what="the embeddings request")
        vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def search(self, query: str, k: int = 3) -> list[Hit]:
        scores = self._vectors @ self._embed([query])[0]
        best = np.argsort(-scores)[:k]
        return [Hit(float(scores[i]), self.texts[i]) for i in best]
