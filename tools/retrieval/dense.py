"""FAISS dense index: exact inner product for small corpora, HNSW or IVF for large ones."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval.base import RetrievalConfig

FAISS_FILE = "dense.faiss"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("dense retrieval needs faiss: pip install 'tinyact[retrieval]'") from e
    return faiss


def choose_kind(n: int, config: RetrievalConfig) -> str:
    """flat below `flat_max_docs`, hnsw below `ivf_min_docs`, else ivf; `dense_kind` overrides."""
    if config.dense_kind != "auto":
        return config.dense_kind
    if n <= config.flat_max_docs:
        return "flat"
    return "hnsw" if n < config.ivf_min_docs else "ivf"


def ivf_nlist(n: int, config: RetrievalConfig) -> int:
    return config.ivf_nlist or max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))


def new_index(kind: str, dim: int, n: int, config: RetrievalConfig) -> Any:
    """An empty index for `n` vectors of `dim`; IVF still needs `train()`."""
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
        index.hnsw.efSearch = config.ef_search
        return index
    if kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        return faiss.IndexIVFFlat(quantizer, dim, ivf_nlist(n, config), faiss.METRIC_INNER_PRODUCT)
    raise ConfigError(f"dense_kind: must be flat, hnsw or ivf; got {kind!r}")


class DenseBuilder:
    """Adds embedding batches to a FAISS index; IVF buffers a training sample first."""

    def __init__(self, kind: str, dim: int, n: int, config: RetrievalConfig) -> None:
        self.kind, self.n = kind, n
        self.index = new_index(kind, dim, n, config)
        self._pending: list[np.ndarray] = []
        self._train_size = min(n, max(256 * ivf_nlist(n, config), 39 * ivf_nlist(n, config))) if kind == "ivf" else 0

    def add(self, vectors: np.ndarray) -> None:
        if self.kind == "ivf" and not self.index.is_trained:
            self._pending.append(vectors)
            if sum(len(v) for v in self._pending) >= self._train_size:
                self._flush()
            return
        self.index.add(vectors)

    def _flush(self) -> None:
        sample = np.concatenate(self._pending)
        self._pending.clear()
        self.index.train(sample)
        self.index.add(sample)

    def finish(self, path: Path) -> None:
        if self._pending:
            self._flush()
        _faiss().write_index(self.index, str(path))


def load(path: Path, mmap: bool = True) -> Any:
    """Read a FAISS index, memory-mapped where the index type allows it."""
    faiss = _faiss()
    if not path.is_file():
        raise RetrievalError(f"FAISS index file missing: {path}")
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            pass  # this index type cannot be mapped; read it into memory
    try:
        return faiss.read_index(str(path))
    except RuntimeError as e:
        raise RetrievalError(f"cannot read FAISS index {path}: {str(e).splitlines()[0]}") from e


def set_search_params(index: Any, config: RetrievalConfig) -> None:
    faiss = _faiss()
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = config.ef_search
    try:
        faiss.extract_index_ivf(index).nprobe = config.nprobe
    except (RuntimeError, AttributeError):
        pass


def search(index: Any, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of shape (len(vectors), min(k, ntotal)); rows of -1 are padding."""
    k = min(k, index.ntotal)
    if k == 0:
        empty = np.zeros((len(vectors), 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    return index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)


__all__ = ["FAISS_FILE", "DenseBuilder", "choose_kind", "load", "new_index", "search", "set_search_params"]
