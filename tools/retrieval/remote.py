"""A client for a Search-R1-compatible retriever server (`POST /retrieve`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval.base import Document, ScoredDocument, check_k, check_query


class RemoteRetriever:
    """Search an index served by `tinyact index serve` or Search-R1's `retrieval_server.py`.

        retriever = RemoteRetriever("http://127.0.0.1:8000")
        hits = retriever.search("who got the first nobel prize in physics", k=3)
    """

    def __init__(self, url: str, *, timeout: float = 30.0, client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"url: must start with http:// or https://; got {url!r}")
        base = url.rstrip("/")
        self.url = base if base.endswith("/retrieve") else base + "/retrieve"
        self._client = client or httpx.Client(timeout=timeout)

    def search(self, query: str, k: int = 3) -> list[ScoredDocument]:
        check_query(query, k)
        return self.batch_search([query], k)[0]

    def batch_search(self, queries: Sequence[str], k: int = 3) -> list[list[ScoredDocument]]:
        if isinstance(queries, str):
            raise ConfigError("queries: must be a list of strings")
        check_k(k)
        for q in queries:
            check_query(q, k)
        if not queries:
            return []
        try:
            response = self._client.post(self.url, json={"queries": list(queries), "topk": k, "return_scores": True})
        except httpx.HTTPError as e:
            raise RetrievalError(f"retriever at {self.url} unreachable: {e}") from e
        if response.status_code != 200:
            raise RetrievalError(f"retriever at {self.url} answered {response.status_code}: {response.text[:200]}")
        try:
            result = response.json()["result"]
            return [[_hit(item) for item in hits] for hits in result]
        except (ValueError, KeyError, TypeError) as e:
            raise RetrievalError(f"retriever at {self.url} sent an unexpected reply: {e!r}") from e

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hit(item: dict[str, Any]) -> ScoredDocument:
    doc = item["document"] if "document" in item else item
    score = float(item.get("score", 0.0)) if "document" in item else 0.0
    if "contents" in doc:
        return ScoredDocument(Document.from_contents(str(doc.get("id", "")), doc["contents"]), score)
    return ScoredDocument(Document(str(doc.get("id", "")), str(doc.get("title", "")), str(doc["text"])), score)


__all__ = ["RemoteRetriever"]
