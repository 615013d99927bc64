"""Build an index folder from a corpus, atomically.

A build writes into `DIR.tmp-<pid>` and renames it to DIR when complete (manifest
last), so DIR is either absent, the old index, or the whole new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval import bm25, dense
from tinyact.tools.retrieval.base import Document, RetrievalConfig
from tinyact.tools.retrieval.corpus import CorpusFormat, CorpusLineWarning, OnError, corpus_files, read_corpus
from tinyact.tools.retrieval.embed import Embedder, passage_text
from tinyact.tools.retrieval.index import FORMAT_VERSION, MANIFEST, Index, make_embedder
from tinyact.tools.retrieval.store import DocStore, StoreWriter

_EMBED_CHUNK = 512  # passages per encode() call while building (and per progress step)

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
    return Index.load(out, embedder=embedder)  # the encoder is loaded already


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
        model = _model_entry(config, dim=index.d)
        return model, {"file": dense.FAISS_FILE, "kind": type(index).__name__, "vectors": n,
                       "dim": index.d, "adopted_from": str(faiss_index)}, None
    embedder = make_embedder(config)
    kind = dense.choose_kind(n, config)
    builder = dense.DenseBuilder(kind, embedder.dim, n, config)
    with _progress(n, config.progress, "embedding") as advance:
        for batch in _batches(store, _EMBED_CHUNK):
            builder.add(embedder.encode_passages([passage_text(d.title, d.text) for d in batch]))
            advance(len(batch))
    builder.finish(folder / dense.FAISS_FILE)
    return _model_entry(config, embedder=embedder), {
        "file": dense.FAISS_FILE, "kind": kind, "vectors": n, "dim": embedder.dim, "adopted_from": None,
    }, embedder


def _model_entry(config: RetrievalConfig, *, embedder: Embedder | None = None, dim: int = 0) -> dict[str, Any]:
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


@contextmanager
def _progress(total: int, enabled: bool, desc: str) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for a progress row with an ETA (``tinyact.console.progress_bar``), or a no-op."""
    if not enabled:
        yield lambda n: None
        return
    from tinyact.console import progress_bar

    with progress_bar() as bar:
        row = bar.add_task(desc, total=total)
        yield lambda n: bar.advance(row, n)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")



__all__ = ["build_index"]
