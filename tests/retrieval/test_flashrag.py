"""FlashRAG's e5 flat index of the wiki-18 sample loads, is adopted into an index folder, answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyact.errors import RetrievalError
from tinyact.tools.retrieval import Index, build_index
from tinyact.tools.retrieval import dense
from tests.retrieval._paths import WIKI18, needs_shared

pytestmark = needs_shared
E5_INDEX = WIKI18 / "e5_flat_sample.index"
CORPUS = WIKI18 / "sample_data.jsonl"


def test_flashrag_index_loads_memory_mapped() -> None:
    index = dense.load(E5_INDEX)
    assert index.ntotal == 1000 and index.d == 768


def test_adopted_flashrag_index_answers_vector_queries(tmp_path: Path) -> None:
    # e5-base-v2 itself is not shipped offline, so query with the stored passage vectors.
    built = build_index(CORPUS, tmp_path / "wiki", backend="dense", model="e5-base-v2",
                        faiss_index=E5_INDEX, progress=False)
    index = Index.load(tmp_path / "wiki")
    m = index.manifest
    assert m["dense"]["adopted_from"] == str(E5_INDEX) and m["dense"]["dim"] == 768 and len(built) == 1000
    raw = dense.load(E5_INDEX)
    rows = [0, 41, 999]
    hits = index.search_vectors(raw.reconstruct_batch(rows), k=3)
    assert [h[0].id for h in hits] == ["0", "41", "999"]
    assert hits[0][0].title == "Evan Morris" and hits[0][0].score == pytest.approx(1.0, abs=1e-2)
    assert all(h[0].score >= h[1].score >= h[2].score for h in hits)


def test_adopting_an_index_of_another_corpus_fails(tmp_path: Path) -> None:
    short = tmp_path / "short.jsonl"
    short.write_text("".join(CORPUS.read_text().splitlines(keepends=True)[:10]))
    with pytest.raises(RetrievalError, match="holds 1000 vectors but the corpus has 10 documents"):
        build_index(short, tmp_path / "ix", backend="dense", faiss_index=E5_INDEX, progress=False)
    assert not (tmp_path / "ix").exists()
