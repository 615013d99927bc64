"""BM25 via bm25s, with PyStemmer stemming and stopwords; saved and memory-mapped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval.base import Document, RetrievalConfig

BM25_DIR = "bm25"
_CHUNK = 20_000


def _modules() -> tuple[Any, Any]:
    try:
        import bm25s
        from bm25s import tokenization
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("BM25 retrieval needs bm25s: pip install 'tinyact[retrieval]'") from e
    return bm25s, tokenization


def make_tokenizer(stemmer: str | None, stopwords: str | None) -> Any:
    _, tokenization = _modules()
    stem = None
    if stemmer:
        try:
            import Stemmer
        except ImportError as e:  # pragma: no cover
            raise ConfigError("stemmer: needs PyStemmer (pip install PyStemmer), or set stemmer=None") from e
        try:
            stem = Stemmer.Stemmer(stemmer).stemWord
        except KeyError as e:
            raise ConfigError(f"stemmer: unknown language {stemmer!r}") from e
    return tokenization.Tokenizer(stopwords=stopwords or [], stemmer=stem)


def bm25_text(doc: Document, title_weight: int) -> str:
    """Title repeated `title_weight` times, then the text: titles name the entity asked about."""
    return " ".join([doc.title] * title_weight + [doc.text])


def build(docs: Iterable[Document], folder: Path, config: RetrievalConfig) -> int:
    """Tokenize (in chunks, so only token ids stay in memory), index and save; returns the count."""
    bm25s, tokenization = _modules()
    tok = make_tokenizer(config.stemmer, config.stopwords)
    ids: list[list[int]] = []
    chunk: list[str] = []
    for doc in docs:
        chunk.append(bm25_text(doc, config.title_weight))
        if len(chunk) >= _CHUNK:
            ids.extend(tok.tokenize(chunk, update_vocab=True, return_as="ids", show_progress=False))
            chunk = []
    if chunk:
        ids.extend(tok.tokenize(chunk, update_vocab=True, return_as="ids", show_progress=False))
    retriever = bm25s.BM25(k1=config.bm25_k1, b=config.bm25_b)
    retriever.index(tokenization.Tokenized(ids=ids, vocab=tok.get_vocab_dict()), show_progress=config.progress)
    folder.mkdir(parents=True, exist_ok=True)
    retriever.save(str(folder))
    tok.save_vocab(str(folder))
    tok.save_stopwords(str(folder))
    return len(ids)


class BM25Searcher:
    """A loaded BM25 index: `search(queries, k) -> (scores, rows)`, hits with score 0 dropped."""

    def __init__(self, folder: Path, config: RetrievalConfig, mmap: bool = True) -> None:
        bm25s, _ = _modules()
        if not folder.is_dir():
            raise RetrievalError(f"BM25 index folder missing: {folder}")
        self._tok = make_tokenizer(config.stemmer, config.stopwords)
        try:
            self._tok.load_vocab(str(folder))
            self._retriever = bm25s.BM25.load(str(folder), mmap=mmap)
        except (OSError, ValueError) as e:
            raise RetrievalError(f"cannot read BM25 index {folder}: {e}") from e
        self.n = int(self._retriever.scores["num_docs"])

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        k = min(k, self.n)
        tokens = self._tok.tokenize(list(queries), update_vocab=False, return_as="string", show_progress=False)
        out: list[list[tuple[int, float]]] = []
        for q in tokens:
            q = [t for t in q if t]
            if not q or k == 0:  # nothing the index knows
                out.append([])
                continue
            rows, scores = self._retriever.retrieve([q], k=k, show_progress=False, n_threads=1)
            out.append([(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0])
        return out


__all__ = ["BM25_DIR", "BM25Searcher", "bm25_text", "build", "make_tokenizer"]
