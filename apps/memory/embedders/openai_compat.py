"""Any OpenAI-compatible ``POST /v1/embeddings`` endpoint (OpenAI, vLLM, Ollama, LM Studio...)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx

from .base import EmbeddingFailed, identity_of

MAX_BATCH = 256


class OpenAICompatible:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        dimensions: int,
        api_key: str = "",
        timeout: float = 30.0,
        send_dimensions: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise EmbeddingFailed("No embeddings endpoint is configured (QD_MEMORY_OPENAI_BASE_URL).")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.dimensions = dimensions
        self.send_dimensions = send_dimensions
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    @property
    def identity(self) -> str:
        return identity_of(self.name, self.model, self.dimensions)

    def _url(self) -> str:
        return self.base_url + ("/embeddings" if self.base_url.endswith("/v1") else "/v1/embeddings")

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), MAX_BATCH):
            vectors.extend(self._embed(list(texts[start : start + MAX_BATCH])))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _embed(self, batch: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.send_dimensions:
            body["dimensions"] = self.dimensions
        try:
            response = self._client.post(self._url(), json=body)
            response.raise_for_status()
            data = response.json()["data"]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            raise EmbeddingFailed(f"The embeddings endpoint failed: {exc}") from exc
        if len(data) != len(batch):
            raise EmbeddingFailed(f"The embeddings endpoint returned {len(data)} vectors for {len(batch)} texts.")
        ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
        vectors = []
        for item in ordered:
            vector = [float(x) for x in item["embedding"]]
            if len(vector) != self.dimensions:
                raise EmbeddingFailed(
                    f"The endpoint returned {len(vector)} dimensions; {self.identity} expects {self.dimensions}."
                )
            norm = math.sqrt(sum(x * x for x in vector)) or 1.0
            vectors.append([x / norm for x in vector])
        return vectors
