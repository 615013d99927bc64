"""Sentence-transformers embeddings, offline, with e5-style query/passage prefixes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyact.errors import ConfigError, RetrievalError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


def resolve_model(name: str) -> Path:
    """A local sentence-transformers folder, or a catalog name -> its prepared folder."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if os.sep in name or name.startswith("."):
        raise ConfigError(f"model: folder {name} does not exist")
    try:
        from tinyact.models.catalog import model_path
    except ImportError as e:
        raise ConfigError(
            f"model: {name!r} is not a folder, and the model catalog (tinyact.models.catalog) is unavailable: {e}"
        ) from e
    return Path(model_path(name))


def default_prefixes(model: str) -> tuple[str, str]:
    """(query_prefix, passage_prefix) a model was trained with; e5 models need them."""
    if "e5" in Path(model.rstrip("/")).name.lower():
        return "query: ", "passage: "
    return "", ""


class Embedder:
    """Encodes queries and passages to L2-normalized float32 vectors (inner product = cosine)."""

    def __init__(
        self,
        model: str,
        *,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        batch_size: int = 64,
        max_seq_length: int | None = None,
    ) -> None:
        self.name = model
        self.path = resolve_model(model)
        q, p = default_prefixes(model)
        self.query_prefix = q if query_prefix is None else query_prefix
        self.passage_prefix = p if passage_prefix is None else passage_prefix
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub from here
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ConfigError(
                "dense retrieval needs sentence-transformers: pip install 'tinyact[retrieval]'"
            ) from e
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars on every load
        except ImportError:  # pragma: no cover
            pass
        try:
            self._model: Any = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        except Exception as e:  # sentence-transformers raises many kinds
            raise RetrievalError(f"cannot load embedding model from {self.path}: {e}") from e
        if max_seq_length is not None:
            self._model.max_seq_length = min(max_seq_length, self._model.max_seq_length or max_seq_length)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self._encode([self.query_prefix + q for q in queries], progress=False)

    def encode_passages(self, passages: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode([self.passage_prefix + p for p in passages], progress=progress)

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        import numpy as np

        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def passage_text(title: str, text: str) -> str:
    """What the encoder sees for a passage: the title line, then the text (wiki-18 style)."""
    return f"{title}\n{text}" if title else text


__all__ = ["Embedder", "default_prefixes", "passage_text", "resolve_model"]
