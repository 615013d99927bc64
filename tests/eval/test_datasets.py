"""Loaders on the real files: counts, fields, corpus, errors."""

from __future__ import annotations

import json

import pytest

from tinyact.errors import ConfigError
from tinyact.eval.datasets import list_benchmarks, load_benchmark, shared_data_dir

COUNTS = [
    ("hotpotqa", "test", 500),
    ("hotpotqa", "train", 1000),
    ("bamboogle", "test", 125),
    ("musique", "test", 500),
    ("2wiki", "test", 500),
    ("math500", "test", 500),
    ("gsm-hard", "test", 500),
    ("aime", "test", 90),
    ("olymmath", "test", 200),
    ("math", "train", 998),  # two items of each MATH train file have no answer: skipped
    ("math", "train-medium", 998),
    ("hotpotqa-distractor", "train", 300),
    ("hotpotqa-distractor", "dev", 300),
    ("hotpotqa-distractor", "test", 500),
]


@pytest.mark.parametrize(("name", "split", "count"), COUNTS)
def test_counts_and_fields(load, name, split, count):
    bench = load(name, split)
    assert len(bench.questions) == count
    assert bench.split == split
    ids = [q.id for q in bench.questions]
    assert len(set(ids)) == len(ids), "ids must be unique (resume relies on it)"
    for q in bench.questions:
        assert isinstance(q.id, str) and q.id
        assert isinstance(q.question, str) and q.question.strip()
        assert q.answer is not None and str(q.answer).strip()


def test_kinds_and_answer_types(load):
    assert {load(n).kind for n in ("hotpotqa", "bamboogle", "musique", "2wiki", "hotpotqa-distractor")} == {"qa"}
    assert {load(n).kind for n in ("math500", "gsm-hard", "aime", "olymmath")} == {"math"}
    gsm = load("gsm-hard")
    assert all(isinstance(q.answer, float) for q in gsm.questions)
    assert gsm.numeric and not load("math500").numeric
    first = load("math500").questions[0]
    assert first.answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first.metadata["type"] == "Precalculus" and first.metadata["level"] == 2


def test_default_split_and_limit(data_dir):
    bench = load_benchmark("bamboogle", limit=7, data_dir=data_dir)
    assert bench.split == "test" and len(bench.questions) == 7
    assert bench.questions[0].answer == "james madison"


def test_hotpotqa_distractor_corpus(load):
    bench = load("hotpotqa-distractor", "test")
    assert bench.has_corpus and len(bench.corpus_files) == 3
    passages = list(bench.corpus())
    assert len(passages) == 10785  # the README's count: every question is answerable
    titles = {p["title"] for p in passages}
    assert len(titles) == len(passages)
    p = passages[0]
    assert p["contents"] == f'"{p["title"]}"\n{p["text"]}'
    for split in ("train", "dev", "test"):
        for q in load("hotpotqa-distractor", split).questions:
            assert q.metadata["gold_titles"] and set(q.metadata["gold_titles"]) <= titles


def test_write_corpus_wiki18_format(load, tmp_path):
    out = tmp_path / "corpus.jsonl"
    n = load("hotpotqa-distractor", "dev").write_corpus(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert n == len(lines) == 10785
    row = json.loads(lines[0])
    assert set(row) == {"id", "contents"} and row["contents"].startswith('"')


def test_no_corpus_for_plain_sets(load):
    with pytest.raises(ConfigError, match="no corpus"):
        load("hotpotqa").corpus()


def test_errors_name_the_problem(data_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'.*gsm-hard"):
        load_benchmark("nope", data_dir=data_dir)
    with pytest.raises(ConfigError, match="no split 'dev'.*test"):
        load_benchmark("aime", "dev", data_dir=data_dir)
    missing = tmp_path / "absent"
    monkeypatch.setenv("TINYACT_SHARED_DATA", str(missing))
    with pytest.raises(ConfigError, match=str(missing)):
        shared_data_dir()
    monkeypatch.setenv("TINYACT_SHARED_DATA", str(data_dir))
    assert shared_data_dir() == data_dir


def test_registry_names():
    assert list_benchmarks() == sorted(list_benchmarks())
    for name in ("hotpotqa", "bamboogle", "musique", "2wiki", "math500", "gsm-hard", "aime", "olymmath",
                 "hotpotqa-distractor"):
        assert name in list_benchmarks()
