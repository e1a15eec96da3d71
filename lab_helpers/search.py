"""A small semantic search over ACME's FAQ with an embeddings server: the second model's job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files

import numpy as np


def acme_faq() -> list[dict[str, str]]:
    """ACME's FAQ: question/answer pairs shipped with the lab."""
    return json.loads(files("lab_helpers.data").joinpath("acme_faq.json").read_text())


@dataclass(frozen=True)
class Hit:
    score: float
    text: str


class SemanticIndex:
    """Texts embedded once; queries ranked by cosine similarity."""

    def __init__(self, embed_server, texts: list[str]) -> None:
        self._server = embed_server
        self.texts = list(texts)
        self._vectors = self._embed(self.texts)

    def _embed(self, texts: list[str]) -> np.ndarray:
        result = self._server.client().embeddings.create(model=self._server.model_name,
                                                         input=texts)
        vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def search(self, query: str, k: int = 3) -> list[Hit]:
        scores = self._vectors @ self._embed([query])[0]
        best = np.argsort(-scores)[:k]
        return [Hit(float(scores[i]), self.texts[i]) for i in best]
