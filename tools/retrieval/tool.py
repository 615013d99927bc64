"""The `search` tool the model calls from its code, formatted as the paper's agents saw it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tinyact.tools.retrieval.base import ScoredDocument, check_query


class Retriever(Protocol):
    """Anything with `search(query, k)`: an Index or a RemoteRetriever."""

    def search(self, query: str, k: int = 3) -> list[ScoredDocument]: ...


def format_hits(hits: Sequence[ScoredDocument], max_chars: int | None = None) -> str:
    """"Retrieved documents:\\n\\n===== Document 1 =====\\nTitle: ...\\n<text>" ..., text cut to `max_chars`."""
    if not hits:
        return "No documents found."
    parts = ["Retrieved documents:"]
    for n, hit in enumerate(hits, start=1):
        text = hit.text if max_chars is None or len(hit.text) <= max_chars else hit.text[:max_chars].rstrip() + " ..."
        parts.append(f"===== Document {n} =====\nTitle: {hit.title}\n{text}")
    return "\n\n".join(parts)


def search_tool(retriever: Retriever, *, max_k: int = 10, max_chars: int | None = 1500) -> Callable[[str, int], str]:
    """Wrap a retriever as the plain function `search(query, k=3) -> str` an agent exposes to its model.

    `max_k` caps how many passages one call may return; `max_chars` caps each passage's text.
    """

    def search(query: str, k: int = 3) -> str:
        """Search the knowledge base (Wikipedia passages) for documents relevant to the query.

        Args:
            query: what to look up, phrased as a short search query or question, e.g.
                "Tinted Windows band first performance city". Search one fact at a time.
            k: how many passages to return, best first (default 3).

        Returns:
            The passages, numbered, each with its title and text:
            "Retrieved documents:\\n\\n===== Document 1 =====\\nTitle: ...\\n<text>".
        """
        check_query(query, k)
        return format_hits(retriever.search(query, min(k, max_k)), max_chars=max_chars)

    return search


__all__ = ["Retriever", "format_hits", "search_tool"]
