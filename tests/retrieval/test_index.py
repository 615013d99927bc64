"""Index folders on real HotpotQA passages: lookups, persistence, atomic builds, hybrid fusion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval import Index, RetrievalConfig, build_index, read_corpus
from tinyact.tools.retrieval.fusion import rrf
from tests.retrieval._paths import needs_shared

pytestmark = needs_shared


@pytest.fixture(scope="session")
def bm25_index(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Index:
    return build_index(small_corpus, tmp_path_factory.mktemp("indexes") / "bm25", backend="bm25", progress=False)


def _first_sentence(text: str) -> str:
    return text.split(". ")[0]


@pytest.mark.parametrize("backend", ["bm25", "dense", "hybrid"])
def test_exact_match_lookup(hybrid_index: Index, backend: str) -> None:
    docs = list(hybrid_index.store)
    for doc in docs[::40]:
        query = f"{doc.title}: {_first_sentence(doc.text)}"
        top = hybrid_index.search(query, k=1, backend=backend)
        assert top[0].id == doc.id, (backend, query, top[0].title)


def test_get_by_id_and_counts(hybrid_index: Index, small_corpus: Path) -> None:
    docs = list(read_corpus(small_corpus))
    assert len(hybrid_index) == len(docs) > 250
    assert hybrid_index.get(docs[17].id) == docs[17]
    with pytest.raises(KeyError):
        hybrid_index.get("no-such-id")


def test_persistence_round_trip(hybrid_index: Index) -> None:
    again = Index.load(hybrid_index.folder)
    queries = ["Which band released the album Tinted Windows?", "first performance Tulsa Oklahoma"]
    for backend in ("bm25", "dense", "hybrid"):
        before = hybrid_index.batch_search(queries, 5, backend=backend)
        after = again.batch_search(queries, 5, backend=backend)
        assert [[h.id for h in q] for q in before] == [[h.id for h in q] for q in after]
        assert np.allclose([h.score for h in before[0]], [h.score for h in after[0]], atol=1e-5)
    m = again.manifest
    assert m["backend"] == "hybrid" and m["corpus"]["documents"] == len(again)
    assert len(m["corpus"]["sha256"]) == 64 and m["dense"]["kind"] == "flat" and m["model"]["dim"] == 384
    assert m["bm25"]["documents"] == len(again)


def test_custom_ids_and_documents_input(tmp_path: Path, hybrid_index: Index) -> None:
    docs = [d for d, _ in zip(hybrid_index.store, range(30), strict=False)]
    renamed = [type(d)(id=f"doc-{d.title}", title=d.title, text=d.text) for d in docs]
    index = build_index(renamed, tmp_path / "ix", backend="bm25", progress=False)
    assert not index.manifest["ids_are_rows"]
    assert index.get(renamed[5].id) == renamed[5]
    assert Index.load(tmp_path / "ix").search(renamed[5].title, 1)[0].id == renamed[5].id


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    from tinyact.tools.retrieval import Document

    with pytest.raises(RetrievalError, match="duplicate document id 'a'"):
        build_index([Document("a", "t", "x"), Document("a", "u", "y")], tmp_path / "ix", backend="bm25", progress=False)
    assert not (tmp_path / "ix").exists()
    assert not list(tmp_path.glob("ix.tmp-*"))


def test_build_is_atomic_and_refuses_to_clobber(tmp_path: Path, bm25_index: Index, small_corpus: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text(small_corpus.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(RetrievalError, match=r"broken.jsonl:2: broken hotpotqa line"):
        build_index(broken, tmp_path / "ix", backend="bm25", progress=False)
    assert not (tmp_path / "ix").exists() and not list(tmp_path.glob("ix.tmp-*"))
    # skip instead: the good line's passages are indexed, the manifest counts the skipped line
    with pytest.warns(UserWarning, match="skipped 1 broken corpus line"):
        ok = build_index(broken, tmp_path / "ix", backend="bm25", on_error="skip", progress=False)
    assert ok.manifest["corpus"]["skipped_lines"] == 1 and len(ok) == 10
    with pytest.raises(ConfigError, match="already exists"):
        build_index(broken, tmp_path / "ix", backend="bm25", progress=False)
    replaced = build_index(small_corpus, tmp_path / "ix", backend="bm25", overwrite=True, progress=False)
    assert len(replaced) == len(bm25_index)


def test_folder_without_manifest_is_not_an_index(tmp_path: Path, bm25_index: Index) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bm25_index.folder, copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(RetrievalError, match="not a tinyact index"):
        Index.load(copy)
    with pytest.raises(RetrievalError, match="not found"):
        Index.load(tmp_path / "absent")


def test_bad_queries_name_the_field(bm25_index: Index) -> None:
    with pytest.raises(ConfigError, match=r"^query: must be a non-empty string"):
        bm25_index.search("")
    with pytest.raises(ConfigError, match=r"^query:"):
        bm25_index.search("   ")
    with pytest.raises(ConfigError, match=r"^k: must be an integer >= 1; got 0"):
        bm25_index.search("x", k=0)
    with pytest.raises(ConfigError, match=r"^k:"):
        bm25_index.batch_search(["x"], k=-1)
    with pytest.raises(ConfigError, match=r"^backend: 'dense' needs parts"):
        bm25_index.search("x", backend="dense")
    with pytest.raises(ConfigError, match=r"^queries:"):
        bm25_index.batch_search("a string")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^rrf_k:"):
        Index.load(bm25_index.folder, rrf_k=0)
    with pytest.raises(ConfigError, match=r"fixed when the index was built"):
        Index.load(bm25_index.folder, bm25_k1=2.0)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"^backend: must be one of dense, bm25, hybrid; got 'sparse'"):
        RetrievalConfig(backend="sparse")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^dense_kind:"):
        RetrievalConfig(dense_kind="lsh")
    with pytest.raises(ConfigError, match=r"^bm25_b:"):
        RetrievalConfig(bm25_b=1.5)
    with pytest.raises(ConfigError, match=r"^dense_weight/bm25_weight:"):
        RetrievalConfig(dense_weight=0, bm25_weight=0)


def test_bm25_query_with_no_known_word_returns_nothing(bm25_index: Index) -> None:
    assert bm25_index.search("the of and", 3) == []  # stopwords only
    assert bm25_index.search("qwxzyv", 3) == []


def test_hybrid_ranks_passages_only_one_backend_finds(hybrid_index: Index, small_records: list[dict]) -> None:
    encoder = hybrid_index.embedder  # the same model for the reloaded index: spare a second load
    """Over the small corpus's own questions, fusing the top 5 of each: gold passages that only
    dense (or only BM25) retrieves still make the hybrid top 10."""
    hybrid_index = Index.load(hybrid_index.folder, fusion_depth=5, link_seeds=0, embedder=encoder)
    depth = 5
    questions = [r["question"] for r in small_records]
    dense = hybrid_index.batch_search(questions, depth, backend="dense")
    sparse = hybrid_index.batch_search(questions, depth, backend="bm25")
    hybrid = hybrid_index.batch_search(questions, 10, backend="hybrid")
    only = {"dense": 0, "bm25": 0}
    for record, d, b, h in zip(small_records, dense, sparse, hybrid, strict=True):
        d_titles, b_titles = {x.title for x in d}, {x.title for x in b}
        for hit in h:
            if hit.title in record["supporting_facts"]["title"]:
                if hit.title in d_titles and hit.title not in b_titles:
                    only["dense"] += 1
                if hit.title in b_titles and hit.title not in d_titles:
                    only["bm25"] += 1
    assert only["dense"] >= 1 and only["bm25"] >= 1, only
    # and a query BM25 cannot match at all still gets dense's ranking through fusion
    vague = "it is not in this"  # stopwords only: BM25 finds nothing
    assert hybrid_index.search(vague, 3, backend="bm25") == []
    assert [h.id for h in hybrid_index.search(vague, 3)] == [h.id for h in hybrid_index.search(vague, 3, backend="dense")]


def test_rrf_weights_and_order() -> None:
    assert [r for r, _ in rrf([[1, 2, 3], [3, 4]], [1.0, 1.0], k=4, rrf_k=60)] == [3, 1, 2, 4]
    assert [r for r, _ in rrf([[1, 2, 3], [3, 4]], [1.0, 0.0], k=4, rrf_k=60)] == [1, 2, 3]
    assert [r for r, _ in rrf([[1, 2], [2, 1]], [1.0, 1.0], k=2, rrf_k=60)] == [1, 2]  # tie: first list wins


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_dense_kinds_build_save_load_search(tmp_path: Path, kind: str) -> None:
    from tinyact.tools.retrieval import dense

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = RetrievalConfig(dense_kind=kind, nprobe=64)
    builder = dense.DenseBuilder(dense.choose_kind(len(vectors), config), 32, len(vectors), config)
    for i in range(0, 3000, 512):
        builder.add(vectors[i : i + 512])
    builder.finish(tmp_path / "x.faiss")
    loaded = dense.load(tmp_path / "x.faiss")
    dense.set_search_params(loaded, config)
    assert loaded.ntotal == 3000
    _, rows = dense.search(loaded, vectors[[5, 1234, 2999]], 1)
    assert rows[:, 0].tolist() == [5, 1234, 2999]


def test_auto_kind_follows_corpus_size() -> None:
    from tinyact.tools.retrieval.dense import choose_kind

    config = RetrievalConfig()
    assert choose_kind(10_000, config) == "flat"
    assert choose_kind(1_000_000, config) == "hnsw"
    assert choose_kind(21_000_000, config) == "ivf"
    assert choose_kind(10, RetrievalConfig(dense_kind="hnsw")) == "hnsw"


def test_manifest_is_json_with_the_build_parameters(hybrid_index: Index) -> None:
    m = json.loads((hybrid_index.folder / "manifest.json").read_text())
    assert m["config"]["rrf_k"] == 10 and m["config"]["backend"] == "hybrid"
    assert m["build_seconds"] > 0


def test_title_links_find_the_second_hop(hybrid_index: Index) -> None:
    """A bridge question: the album passage names the band, whose passage holds the answer."""
    question = 'The band who released the debut album "Tinted Windows" had their first performance in what city?'
    plain = Index.load(hybrid_index.folder, link_seeds=0, embedder=hybrid_index.embedder)
    linked = [h.title for h in hybrid_index.search(question, 5)]
    assert {"Tinted Windows (album)", "Tinted Windows (band)"} <= set(linked)
    assert linked[0] == plain.search(question, 1)[0].title  # links never displace the top passage
    scores = [h.score for h in hybrid_index.search(question, 5)]
    assert scores == sorted(scores, reverse=True)


def test_title_table_mentions() -> None:
    from tinyact.tools.retrieval.links import TitleTable, normalize_title

    assert normalize_title("Tinted Windows (band)") == "tinted windows"
    table = TitleTable(["Tinted Windows (band)", "Tulsa, Oklahoma", "Tinted", "Cain's Ballroom"])
    assert table.mentions("They played Cain's Ballroom in Tulsa, Oklahoma; Tinted Windows too.") == [3, 1, 0]
    assert table.mentions("") == []
