"""Value types of the retrieval tool: its config, a document, a scored hit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tinyact.errors import ConfigError

Backend = Literal["dense", "bm25", "hybrid"]
BACKENDS: tuple[str, ...] = ("dense", "bm25", "hybrid")
DENSE_KINDS: tuple[str, ...] = ("auto", "flat", "hnsw", "ivf")

DEFAULT_MODEL = "minilm-l6"


@dataclass(frozen=True, slots=True)
class Document:
    """One passage: a stable id, the title of its article, and its text."""

    id: str
    title: str
    text: str

    @property
    def contents(self) -> str:
        """The wiki-18 / Search-R1 form: `"Title"\\ntext`."""
        return f'"{self.title}"\n{self.text}'

    @classmethod
    def from_contents(cls, id: str, contents: str) -> Document:
        """Parse the wiki-18 form back; a first line without quotes is the title as is."""
        first, sep, rest = contents.partition("\n")
        if not sep:  # no title line at all
            return cls(id=id, title="", text=contents)
        title = first[1:-1] if len(first) >= 2 and first[0] == first[-1] == '"' else first
        return cls(id=id, title=title, text=rest)


@dataclass(frozen=True, slots=True)
class ScoredDocument:
    """A search hit: the document and its score (higher is better; scales differ by backend)."""

    document: Document
    score: float

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def title(self) -> str:
        return self.document.title

    @property
    def text(self) -> str:
        return self.document.text


@dataclass
class RetrievalConfig:
    """How an index is built and searched. Every field is checked in `__post_init__`.

    Build-time fields are stored in the index manifest; search-time fields
    (`rrf_k`, weights, `fusion_depth`, `ef_search`, `nprobe`) may be changed on a loaded index.
    """

    backend: Backend = "hybrid"
    model: str = DEFAULT_MODEL  # catalog name or a local sentence-transformers folder
    # None = chosen from the model name (e5 models get "query: " / "passage: "); "" = none.
    query_prefix: str | None = None
    passage_prefix: str | None = None
    batch_size: int = 64  # embedding batch size
    max_seq_length: int | None = 256  # tokens per passage for the encoder; None = the model's
    dense_kind: str = "auto"  # auto: flat below flat_max_docs, hnsw below ivf_min_docs, else ivf
    flat_max_docs: int = 200_000
    ivf_min_docs: int = 5_000_000
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int | None = None  # None = 4 * sqrt(n)
    nprobe: int = 32
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    stemmer: str | None = "english"  # PyStemmer language, or None
    stopwords: str | None = "en"
    title_weight: int = 2  # the title is indexed this many times for BM25
    # Hybrid search. Defaults tuned on HotpotQA-distractor (bench/retrieval.py).
    rrf_k: int = 10  # reciprocal-rank-fusion constant
    dense_weight: float = 0.5
    bm25_weight: float = 1.0
    fusion_depth: int = 100  # hits taken from each backend before fusion
    link_seeds: int = 3  # hybrid: titles mentioned in the top this-many passages join the fusion; 0 = off
    link_weight: float = 1.0  # RRF weight of that title-link list
    link_query: bool = True  # titles mentioned in the query itself join the link list too
    progress: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: must be one of {', '.join(BACKENDS)}; got {self.backend!r}")
        if self.dense_kind not in DENSE_KINDS:
            raise ConfigError(f"dense_kind: must be one of {', '.join(DENSE_KINDS)}; got {self.dense_kind!r}")
        if not self.model:
            raise ConfigError("model: must be a catalog name or a folder; got ''")
        for name in ("batch_size", "hnsw_m", "ef_construction", "ef_search", "nprobe", "rrf_k",
                     "fusion_depth", "flat_max_docs", "ivf_min_docs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1; got {value!r}")
        for name in ("ivf_nlist", "max_seq_length"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name}: must be an integer >= 1 or None; got {value!r}")
        if not isinstance(self.link_seeds, int) or self.link_seeds < 0:
            raise ConfigError(f"link_seeds: must be an integer >= 0; got {self.link_seeds!r}")
        if self.link_weight < 0:
            raise ConfigError(f"link_weight: must be >= 0; got {self.link_weight}")
        if not isinstance(self.title_weight, int) or self.title_weight < 0:
            raise ConfigError(f"title_weight: must be an integer >= 0; got {self.title_weight!r}")
        if self.bm25_k1 <= 0:
            raise ConfigError(f"bm25_k1: must be > 0; got {self.bm25_k1}")
        if not 0 <= self.bm25_b <= 1:
            raise ConfigError(f"bm25_b: must be in [0, 1]; got {self.bm25_b}")
        if self.dense_weight < 0 or self.bm25_weight < 0 or self.dense_weight + self.bm25_weight == 0:
            raise ConfigError(
                f"dense_weight/bm25_weight: must be >= 0 and not both 0; "
                f"got {self.dense_weight}/{self.bm25_weight}"
            )

    @property
    def uses_dense(self) -> bool:
        return self.backend in ("dense", "hybrid")

    @property
    def uses_bm25(self) -> bool:
        return self.backend in ("bm25", "hybrid")


def check_query(query: object, k: object) -> None:
    """The checks every search entry point makes; one-line ConfigErrors naming the field."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"query: must be a non-empty string; got {query!r}")
    check_k(k)


def check_k(k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k: must be an integer >= 1; got {k!r}")


__all__ = ["BACKENDS", "Backend", "Document", "RetrievalConfig", "ScoredDocument", "check_k", "check_query"]
