"""Retrieval for agents: corpora, dense (FAISS) + BM25 + hybrid search, index folders, a server.

    from tinyact.tools.retrieval import build_index, open_index, search_tool

    index = build_index("hotpotqa.jsonl", "hotpot-index", backend="hybrid")
    search = search_tool(index)            # search(query: str, k: int = 3) -> str
    print(search("Tinted Windows first performance"))

Heavy libraries (faiss, bm25s, sentence-transformers, fastapi) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "CorpusLineWarning": "tinyact.tools.retrieval.corpus",
    "Document": "tinyact.tools.retrieval.base",
    "Embedder": "tinyact.tools.retrieval.embed",
    "Index": "tinyact.tools.retrieval.index",
    "RemoteRetriever": "tinyact.tools.retrieval.remote",
    "RetrievalConfig": "tinyact.tools.retrieval.base",
    "Retriever": "tinyact.tools.retrieval.tool",
    "ScoredDocument": "tinyact.tools.retrieval.base",
    "build_index": "tinyact.tools.retrieval.build",
    "create_app": "tinyact.tools.retrieval.server",
    "format_hits": "tinyact.tools.retrieval.tool",
    "open_index": "tinyact.tools.retrieval.index",
    "read_corpus": "tinyact.tools.retrieval.corpus",
    "search_tool": "tinyact.tools.retrieval.tool",
    "serve": "tinyact.tools.retrieval.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinyact.tools.retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from tinyact.tools.retrieval.base import Document, RetrievalConfig, ScoredDocument
    from tinyact.tools.retrieval.corpus import CorpusLineWarning, read_corpus
    from tinyact.tools.retrieval.embed import Embedder
    from tinyact.tools.retrieval.build import build_index
    from tinyact.tools.retrieval.index import Index, open_index
    from tinyact.tools.retrieval.remote import RemoteRetriever
    from tinyact.tools.retrieval.server import create_app, serve
    from tinyact.tools.retrieval.tool import Retriever, format_hits, search_tool
