"""Load and search an index folder.

    DIR/
      manifest.json   written last: corpus hash, model, backend, parameters, counts
      docs.jsonl, offsets.npy, ids.txt, titles.txt   the document store (store.py)
      dense.faiss     FAISS index (dense, hybrid)
      bm25/           bm25s index + tokenizer vocabulary (bm25, hybrid)
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval import bm25, dense
from tinyact.tools.retrieval.base import BACKENDS, Document, RetrievalConfig, ScoredDocument, check_k, check_query
from tinyact.tools.retrieval.embed import Embedder
from tinyact.tools.retrieval.fusion import rrf
from tinyact.tools.retrieval.links import TitleTable
from tinyact.tools.retrieval.store import DocStore

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# Fields a loaded index may change: they only affect searching.
SEARCH_FIELDS = frozenset({
    "rrf_k", "dense_weight", "bm25_weight", "fusion_depth", "link_seeds", "link_weight", "link_query",
    "ef_search", "nprobe", "batch_size",
})


def make_embedder(config: RetrievalConfig) -> Embedder:
    return Embedder(
        config.model,
        query_prefix=config.query_prefix,
        passage_prefix=config.passage_prefix,
        batch_size=config.batch_size,
        max_seq_length=config.max_seq_length,
    )


class Index:
    """A loaded index folder. Searching is thread-safe; the embedding model loads on first dense query.

        index = Index.load("hotpot-index")
        for hit in index.search("Who founded Tinted Windows?", k=5):
            print(hit.score, hit.title)
    """

    def __init__(self, folder: Path, manifest: dict[str, Any], config: RetrievalConfig, *, mmap: bool = True) -> None:
        self.folder = folder
        self.manifest = manifest
        self.config = config
        self.store = DocStore(folder, bool(manifest.get("ids_are_rows")))
        self._dense: Any = None
        self._bm25: bm25.BM25Searcher | None = None
        if manifest.get("dense"):
            self._dense = dense.load(folder / manifest["dense"]["file"], mmap=mmap)
            dense.set_search_params(self._dense, config)
        if manifest.get("bm25"):
            self._bm25 = bm25.BM25Searcher(folder / manifest["bm25"]["dir"], config, mmap=mmap)
        self._embedder: Embedder | None = None
        self._titles: TitleTable | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        mmap: bool = True,
        model: str | None = None,
        embedder: Embedder | None = None,
        **search_options: Any,
    ) -> Index:
        """Open an index folder. `model` replaces the recorded query encoder (e.g. for an adopted
        FAISS index), `embedder` shares one already loaded; `search_options` change search-time
        fields (rrf_k, weights, fusion_depth, link_seeds, ...)."""
        path = Path(folder)
        manifest_file = path / MANIFEST
        if not path.is_dir():
            raise RetrievalError(f"index folder not found: {path}")
        if not manifest_file.is_file():
            raise RetrievalError(f"{path} is not a tinyact index (no {MANIFEST}); an interrupted build leaves none")
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RetrievalError(f"{manifest_file}: not valid JSON ({e.msg}, line {e.lineno})") from e
        if manifest.get("format") != "tinyact-index" or manifest.get("version") != FORMAT_VERSION:
            raise RetrievalError(f"{manifest_file}: not a tinyact index manifest of version {FORMAT_VERSION}")
        bad = set(search_options) - SEARCH_FIELDS
        if bad:
            raise ConfigError(f"{', '.join(sorted(bad))}: fixed when the index was built; only "
                              f"{', '.join(sorted(SEARCH_FIELDS))} may change on load")
        fields = {f.name for f in dataclasses.fields(RetrievalConfig)}
        recorded = {k: v for k, v in manifest.get("config", {}).items() if k in fields}
        if model is not None:
            recorded["model"] = model
        elif manifest.get("model") and manifest["model"].get("path") and Path(manifest["model"]["path"]).is_dir():
            recorded["model"] = manifest["model"]["path"]
        config = RetrievalConfig(**{**recorded, **search_options})
        index = cls(path, manifest, config, mmap=mmap)
        index._embedder = embedder
        return index

    # -- facts ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    @property
    def backend(self) -> str:
        return str(self.manifest["backend"])

    @property
    def has_dense(self) -> bool:
        return self._dense is not None

    def get(self, doc_id: str) -> Document:
        """The document with this id (KeyError when absent)."""
        return self.store.get(doc_id)

    def __repr__(self) -> str:
        return f"Index({str(self.folder)!r}, backend={self.backend!r}, documents={len(self)})"

    # -- searching -------------------------------------------------------------
    def search(self, query: str, k: int = 3, *, backend: str | None = None) -> list[ScoredDocument]:
        """The top `k` documents for `query`, best first."""
        check_query(query, k)
        return self.batch_search([query], k, backend=backend)[0]

    def batch_search(self, queries: Sequence[str], k: int = 3, *, backend: str | None = None) -> list[list[ScoredDocument]]:
        """`search` for many queries at once (queries are embedded in one batch)."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise ConfigError("queries: must be a list of strings")
        for q in queries:
            check_query(q, k)
        if not queries:
            return []
        use = self._backend(backend)
        depth = max(k, self.config.fusion_depth) if use == "hybrid" else k
        dense_hits = self._dense_rows(queries, depth) if use in ("dense", "hybrid") else None
        bm25_hits = self._bm25.search(queries, depth) if use in ("bm25", "hybrid") and self._bm25 else None
        results: list[list[ScoredDocument]] = []
        for i in range(len(queries)):
            if use == "dense":
                rows = dense_hits[i][:k]  # type: ignore[index]
            elif use == "bm25":
                rows = bm25_hits[i][:k]  # type: ignore[index]
            else:
                rows = self._fuse(queries[i], dense_hits[i], bm25_hits[i], k)  # type: ignore[index]
            results.append([ScoredDocument(self.store.row(r), float(s)) for r, s in rows])
        return results

    def _fuse(self, query: str, dense_hits: list[tuple[int, float]], bm25_hits: list[tuple[int, float]], k: int) -> list[tuple[int, float]]:
        """RRF of the dense and BM25 rankings; with `link_seeds`, a second hop over title links."""
        c = self.config
        lists = [[r for r, _ in dense_hits], [r for r, _ in bm25_hits]]
        weights = [c.dense_weight, c.bm25_weight]
        first = rrf(lists, weights, max(k, c.fusion_depth), c.rrf_k)
        if not c.link_seeds or c.link_weight == 0 or not first:
            return first[:k]
        seeds = [r for r, _ in first[: c.link_seeds]]
        mentioned = self.titles.mentions(query) if c.link_query else []
        for row in seeds:
            mentioned.extend(self.titles.mentions(self.store.row(row).text))
        first_score = dict(first)
        seed_set = set(seeds)
        linked = [r for r in dict.fromkeys(mentioned) if r not in seed_set]
        linked.sort(key=lambda r: -first_score.get(r, 0.0))  # stable: unscored keep mention order
        fused = rrf([*lists, linked], [*weights, c.link_weight], k + 1, c.rrf_k)
        # The first ranking's top passage keeps rank 1: links find second hops, not first ones.
        top_row, top_score = first[0]
        rest = [(r, s) for r, s in fused if r != top_row]
        best = max([top_score, *(s for _, s in rest[:1])])
        return [(top_row, best), *rest][:k]

    @property
    def titles(self) -> TitleTable:
        """Normalized title -> rows, built on first use from titles.txt."""
        if self._titles is None:
            with self._lock:
                if self._titles is None:
                    self._titles = TitleTable(self.store.titles())
        return self._titles

    def search_vectors(self, vectors: np.ndarray, k: int = 3) -> list[list[ScoredDocument]]:
        """Dense search with query vectors you embedded yourself (shape (n, dim))."""
        check_k(k)
        if self._dense is None:
            raise ConfigError(f"backend: this index has no dense part (built as {self.backend!r})")
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self._dense.d:
            raise ConfigError(f"vectors: must have {self._dense.d} columns; got {vectors.shape[1]}")
        scores, rows = dense.search(self._dense, vectors, k)
        return [[ScoredDocument(self.store.row(int(r)), float(s)) for r, s in zip(rr, ss, strict=True) if r >= 0]
                for rr, ss in zip(rows, scores, strict=True)]

    def _backend(self, backend: str | None) -> str:
        use = backend or self.backend
        if use not in BACKENDS:
            raise ConfigError(f"backend: must be one of {', '.join(BACKENDS)}; got {use!r}")
        if use in ("dense", "hybrid") and self._dense is None or use in ("bm25", "hybrid") and self._bm25 is None:
            raise ConfigError(f"backend: {use!r} needs parts this index lacks (built as {self.backend!r})")
        return use

    def _dense_rows(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        vectors = self.embedder.encode_queries(list(queries))
        if vectors.shape[1] != self._dense.d:
            raise RetrievalError(
                f"model {self.config.model!r} gives {vectors.shape[1]}-d vectors; the index holds {self._dense.d}-d"
            )
        scores, rows = dense.search(self._dense, vectors, k)
        return [[(int(r), float(s)) for r, s in zip(rr, ss, strict=True) if r >= 0] for rr, ss in zip(rows, scores, strict=True)]

    @property
    def embedder(self) -> Embedder:
        """The query encoder, loaded on first use."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = make_embedder(self.config)
        return self._embedder

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_index(folder: str | Path, **options: Any) -> Index:
    """Same as `Index.load(folder, **options)`."""
    return Index.load(folder, **options)


__all__ = ["MANIFEST", "Index", "make_embedder", "open_index"]
