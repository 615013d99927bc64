"""Fixtures: real files from ../shared/data, a small HotpotQA corpus, indexes built once per session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.retrieval._paths import HOTPOT, SHARED, WIKI18

SMALL_RECORDS = 30  # HotpotQA questions -> about 290 passages


@pytest.fixture(scope="session")
def shared() -> Path:
    if not HOTPOT.is_dir() or not WIKI18.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set TINYACT_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def small_records(shared: Path) -> list[dict]:
    with (HOTPOT / "dev.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(SMALL_RECORDS), f, strict=False)]


@pytest.fixture(scope="session")
def small_corpus(small_records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "hotpot-small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in small_records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def embed_model() -> str:
    """A local sentence-transformers folder: $TINYACT_EMBED_MODEL, else the catalog's minilm-l6."""
    name = os.environ.get("TINYACT_EMBED_MODEL")
    if name:
        return name
    try:
        from tinyact.models.catalog import model_path

        return str(model_path("minilm-l6"))
    except Exception as e:  # no catalog, no network for the first preparation, ...
        pytest.skip(f"embedding model minilm-l6 unavailable ({type(e).__name__}: {e}); set TINYACT_EMBED_MODEL")


@pytest.fixture(scope="session")
def hybrid_index(small_corpus: Path, embed_model: str, tmp_path_factory: pytest.TempPathFactory):
    from tinyact.tools.retrieval import build_index

    out = tmp_path_factory.mktemp("indexes") / "hybrid"
    return build_index(small_corpus, out, backend="hybrid", model=embed_model, max_seq_length=128, progress=False)
