"""Corpus readers on the real shared files; broken lines; the wiki-18 contents form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval import CorpusLineWarning, Document, read_corpus
from tinyact.tools.retrieval.corpus import detect_format
from tests.retrieval._paths import HOTPOT, WIKI18, needs_shared

pytestmark = needs_shared


def test_hotpotqa_folder_is_the_10785_passage_corpus() -> None:
    docs = list(read_corpus(HOTPOT))
    assert len(docs) == 10_785
    assert len({d.title for d in docs}) == len(docs)  # de-duplicated by title
    assert [d.id for d in docs[:3]] == ["0", "1", "2"]
    first = json.loads((HOTPOT / "dev.jsonl").open().readline())
    assert docs[0].title == first["context"]["title"][0]
    assert docs[0].text == "".join(first["context"]["sentences"][0]).strip()


def test_hotpotqa_original_list_context_form(tmp_path: Path) -> None:
    record = {"context": [["A title", ["One.", " Two."]], ["B", ["Three."]], ["A title", ["dup"]]]}
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert list(read_corpus(path, format="hotpotqa")) == [
        Document("0", "A title", "One. Two."), Document("1", "B", "Three.")
    ]


def test_wiki18_sample_reads_in_flashrag_order() -> None:
    docs = list(read_corpus(WIKI18 / "sample_data.jsonl"))
    assert len(docs) == 1000
    assert docs[0].id == "0" and docs[0].title == "Evan Morris"
    assert docs[0].text.startswith("Evan Morris Evan L. Morris")
    raw = json.loads((WIKI18 / "sample_data.jsonl").open().readline())
    assert docs[0].contents == raw["contents"]  # round trip to the Search-R1 form


def test_title_text_jsonl(tmp_path: Path) -> None:
    source = list(read_corpus(WIKI18 / "sample_data.jsonl"))[:20]
    path = tmp_path / "tt.jsonl"
    with path.open("w") as f:
        for d in source:
            f.write(json.dumps({"title": d.title, "text": d.text}) + "\n")
    docs = list(read_corpus(path))
    assert [(d.title, d.text) for d in docs] == [(d.title, d.text) for d in source]
    assert [d.id for d in docs] == [str(i) for i in range(20)]


def _broken(tmp_path: Path) -> Path:
    lines = (WIKI18 / "sample_data.jsonl").read_text().splitlines()[:4]
    lines.insert(2, '{"id": "x", "contents": "unterminated')  # line 3
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_broken_line_fails_with_its_line_number(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    with pytest.raises(RetrievalError, match=rf"{path.name}:3: broken wiki18 line"):
        list(read_corpus(path, on_error="fail"))


def test_broken_line_skipped_with_a_warning(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    with pytest.warns(CorpusLineWarning, match=r":3: .*skipped"):
        docs = list(read_corpus(path, on_error="skip"))
    assert [d.id for d in docs] == ["0", "1", "2", "3"]


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"title": "a", "text": "b"}\n{"title": "c"}\n')
    with pytest.raises(RetrievalError, match=r":2: .*missing field 'text'"):
        list(read_corpus(path))


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="^format:"):
        read_corpus(HOTPOT, format="csv")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="^on_error:"):
        read_corpus(HOTPOT, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match="not found"):
        read_corpus(HOTPOT / "nope.jsonl")
    with pytest.raises(RetrievalError, match="cannot tell the corpus format"):
        detect_format({"question": "q"})


def test_contents_parsing() -> None:
    assert Document.from_contents("7", '"T"\nbody') == Document("7", "T", "body")
    assert Document.from_contents("7", "T\nbody").title == "T"
    assert Document.from_contents("7", "no title").text == "no title"
