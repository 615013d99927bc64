"""Build, load and search an index folder.

    DIR/
      manifest.json   written last: corpus hash, model, backend, parameters, counts
      docs.jsonl, offsets.npy, ids.txt     the document store (store.py)
      dense.faiss     FAISS index (dense, hybrid)
      bm25/           bm25s index + tokenizer vocabulary (bm25, hybrid)

A build writes into `DIR.tmp-<pid>` and renames it to DIR when complete, so DIR
is either absent, the old index, or the whole new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval import bm25, dense
from tinyact.tools.retrieval.base import (
    BACKENDS,
    Document,
    RetrievalConfig,
    ScoredDocument,
    check_k,
    check_query,
)
from tinyact.tools.retrieval.corpus import CorpusFormat, CorpusLineWarning, OnError, corpus_files, read_corpus
from tinyact.tools.retrieval.embed import Embedder, passage_text
from tinyact.tools.retrieval.fusion import rrf
from tinyact.tools.retrieval.links import TitleTable
from tinyact.tools.retrieval.store import DocStore, StoreWriter

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_EMBED_CHUNK = 2048  # passages per encode() call while building
# Fields a loaded index may change: they only affect searching.
SEARCH_FIELDS = frozenset({
    "rrf_k", "dense_weight", "bm25_weight", "fusion_depth", "link_seeds", "link_weight", "link_query",
    "ef_search", "nprobe", "batch_size",
})

CorpusLike = str | Path | Sequence[str | Path] | Iterable[Document]


def build_index(
    corpus: CorpusLike,
    out_dir: str | Path,
    *,
    backend: str | None = None,
    model: str | None = None,
    config: RetrievalConfig | None = None,
    format: CorpusFormat = "auto",
    on_error: OnError = "fail",
    faiss_index: str | Path | None = None,
    overwrite: bool = False,
    **options: Any,
) -> Index:
    """Build an index folder from a corpus (file, folder, list of files, or Documents) and load it.

    `backend`, `model` and `options` override fields of `config` (a RetrievalConfig).
    `faiss_index` adopts a prebuilt FAISS index over the same corpus, in order (e.g.
    FlashRAG's / Search-R1's `e5_Flat.index` with wiki-18) instead of embedding.
    """
    config = _config(config, backend=backend, model=model, **options)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ConfigError(f"out_dir: {out} already exists (pass overwrite=True / --overwrite to replace it)")
    started = time.perf_counter()
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest, embedder = _build_into(tmp, corpus, config, format, on_error, faiss_index)
        manifest["build_seconds"] = round(time.perf_counter() - started, 3)
        _write_json(tmp / MANIFEST, manifest)  # last: a folder without it is not an index
        if out.exists():
            old = out.with_name(f"{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index = Index.load(out)
    index._embedder = embedder  # already loaded: spare the first query a second load
    return index


def _config(config: RetrievalConfig | None, **overrides: Any) -> RetrievalConfig:
    base = config or RetrievalConfig()
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - {f.name for f in dataclasses.fields(RetrievalConfig)}
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, **changes) if changes else base


def _documents(corpus: CorpusLike, format: CorpusFormat, on_error: OnError) -> tuple[Iterable[Document], list[str]]:
    if isinstance(corpus, (str, Path)) or (
        isinstance(corpus, Sequence) and corpus and all(isinstance(c, (str, Path)) for c in corpus)
    ):
        files = corpus_files(corpus)  # type: ignore[arg-type]
        return read_corpus(files, format=format, on_error=on_error), [str(f) for f in files]
    return corpus, []  # type: ignore[return-value]


def _build_into(
    folder: Path,
    corpus: CorpusLike,
    config: RetrievalConfig,
    format: CorpusFormat,
    on_error: OnError,
    faiss_index: str | Path | None,
) -> tuple[dict[str, Any], Embedder | None]:
    docs, sources = _documents(corpus, format, on_error)
    writer = StoreWriter(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CorpusLineWarning)
        writer.extend(docs)
    n, sha, ids_are_rows = writer.close()
    skipped = [str(w.message) for w in caught if issubclass(w.category, CorpusLineWarning)]
    for w in caught:  # pass on everything else, and say once what was skipped
        if not issubclass(w.category, CorpusLineWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} broken corpus line(s); first: {skipped[0]}", CorpusLineWarning, stacklevel=3)
    if n == 0:
        raise RetrievalError("the corpus holds no documents")
    store = DocStore(folder, ids_are_rows)
    manifest: dict[str, Any] = {
        "format": "tinyact-index",
        "version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": config.backend,
        "corpus": {"sources": sources, "sha256": sha, "documents": n, "skipped_lines": len(skipped)},
        "ids_are_rows": ids_are_rows,
        "model": None,
        "dense": None,
        "bm25": None,
        "config": dataclasses.asdict(config),
    }
    embedder = None
    try:
        if config.uses_dense:
            manifest["model"], manifest["dense"], embedder = _build_dense(folder, store, config, faiss_index)
        elif faiss_index is not None:
            raise ConfigError("faiss_index: only used with backend dense or hybrid")
        if config.uses_bm25:
            count = bm25.build(store, folder / bm25.BM25_DIR, config)
            manifest["bm25"] = {"dir": bm25.BM25_DIR, "documents": count, "k1": config.bm25_k1, "b": config.bm25_b}
    finally:
        store.close()
    return manifest, embedder


def _build_dense(
    folder: Path, store: DocStore, config: RetrievalConfig, faiss_index: str | Path | None
) -> tuple[dict[str, Any], dict[str, Any], Embedder | None]:
    n = len(store)
    if faiss_index is not None:
        index = dense.load(Path(faiss_index), mmap=False)
        if index.ntotal != n:
            raise RetrievalError(f"faiss_index: holds {index.ntotal} vectors but the corpus has {n} documents")
        shutil.copyfile(faiss_index, folder / dense.FAISS_FILE)
        model = _model_entry(config, dim=index.d, load=False)
        return model, {"file": dense.FAISS_FILE, "kind": type(index).__name__, "vectors": n,
                       "dim": index.d, "adopted_from": str(faiss_index)}, None
    embedder = _embedder(config)
    kind = dense.choose_kind(n, config)
    builder = dense.DenseBuilder(kind, embedder.dim, n, config)
    with _progress(n, config.progress, "embedding") as bar:
        for batch in _batches(store, _EMBED_CHUNK):
            builder.add(embedder.encode_passages([passage_text(d.title, d.text) for d in batch]))
            bar.update(len(batch))
    builder.finish(folder / dense.FAISS_FILE)
    return _model_entry(config, embedder=embedder), {
        "file": dense.FAISS_FILE, "kind": kind, "vectors": n, "dim": embedder.dim, "adopted_from": None,
    }, embedder


def _embedder(config: RetrievalConfig) -> Embedder:
    return Embedder(
        config.model,
        query_prefix=config.query_prefix,
        passage_prefix=config.passage_prefix,
        batch_size=config.batch_size,
        max_seq_length=config.max_seq_length,
    )


def _model_entry(config: RetrievalConfig, *, embedder: Embedder | None = None, dim: int = 0, load: bool = True) -> dict[str, Any]:
    if embedder is None:
        return {"name": config.model, "path": None, "dim": dim,
                "query_prefix": config.query_prefix, "passage_prefix": config.passage_prefix}
    return {"name": config.model, "path": str(embedder.path), "dim": embedder.dim,
            "query_prefix": embedder.query_prefix, "passage_prefix": embedder.passage_prefix}


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="doc")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


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
    def load(cls, folder: str | Path, *, mmap: bool = True, model: str | None = None, **search_options: Any) -> Index:
        """Open an index folder. `model` replaces the recorded query encoder (e.g. for an adopted
        FAISS index); `search_options` change search-time fields (rrf_k, weights, fusion_depth, ...)."""
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
        return cls(path, manifest, config, mmap=mmap)

    # -- facts ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.store)

    @property
    def backend(self) -> str:
        return str(self.manifest["backend"])

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
                    self._embedder = _embedder(self.config)
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


__all__ = ["MANIFEST", "Index", "build_index", "open_index"]
