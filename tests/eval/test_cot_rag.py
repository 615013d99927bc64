"""CoT with retrieved passages (the paper's CoT baseline on QA): the prompt, the solver, and
`eval run --method cot --index` on real HotpotQA questions over a real BM25 index."""

from __future__ import annotations

import itertools
import json

import pytest
from typer.testing import CliRunner

from tinyact.eval.cli import app
from tinyact.eval.prompts import PASSAGE_CHARS, cot_messages
from tinyact.models.engines import ReplayEngine


def test_passages_come_before_the_question_numbered_and_cut():
    long = "word " * 400
    user = cot_messages("Who?", "qa", [{"title": "A", "text": "alpha"}, {"title": "B", "text": long}])[1].content
    assert user.index("[1] A\nalpha") < user.index("[2] B\n") < user.index("Question: Who?")
    second = user.split("[2] B\n", 1)[1].split("\n\nQuestion:")[0]
    assert len(second) <= PASSAGE_CHARS and second.endswith(" ...")
    # no passages: the plain prompt, as it was
    assert cot_messages("Who?", "qa", []) == cot_messages("Who?", "qa")
    assert cot_messages("Who?", "qa")[1].content.startswith("Question: Who?")


@pytest.fixture(scope="module")
def index_dir(data_dir, tmp_path_factory):
    from tinyact.tools.retrieval import build_index

    folder = tmp_path_factory.mktemp("rag")
    with open(data_dir / "hotpotqa-distractor" / "test.jsonl", encoding="utf-8") as f:
        (folder / "corpus.jsonl").write_text("".join(itertools.islice(f, 2)), encoding="utf-8")
    build_index(folder / "corpus.jsonl", folder / "index", backend="bm25", progress=False)
    return folder / "index"


def test_eval_run_cot_with_an_index(data_dir, index_dir, tmp_path, monkeypatch):
    import tinyact.models.engines as engines

    from tinyact.eval.datasets import load_benchmark

    bench = load_benchmark("hotpotqa-distractor", "test", limit=2, data_dir=data_dir)
    made: list[ReplayEngine] = []

    def fake_load_engine(model, engine="transformers", **kw):
        made.append(ReplayEngine([f"<answer>{bench.questions[0].answer}</answer>", "<answer>no</answer>"]))
        return made[-1]

    monkeypatch.setattr(engines, "load_engine", fake_load_engine)
    out = tmp_path / "run"
    args = ["run", "--benchmark", "hotpotqa-distractor", "--limit", "2", "--out", str(out), "--model", "tiny",
            "--engine", "transformers", "--index", str(index_dir), "--rag-k", "3", "--data-dir", str(data_dir),
            "--no-progress"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "accuracy 0.500 (em)" in r.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["index"] == str(index_dir) and cfg["rag_k"] == 3 and cfg["rag_prompt"] == "rag-v1"
    users = [conv[1].content for conv in made[0].calls[0]["conversations"]]
    gold_titles = bench.questions[0].metadata.get("supporting_facts", {}).get("title") or []
    assert all(u.startswith("Retrieved passages") and u.count("\n[") == 3 for u in users)
    assert gold_titles and any(f"] {t}\n" in users[0] for t in gold_titles)  # BM25 finds a gold paragraph
    # another k (or no index) is another run: the folder does not resume across settings
    r = CliRunner().invoke(app, args[:-4] + ["2"] + args[-3:])
    assert r.exit_code == 2 and "rag_k: 3 -> 2" in r.output
    r = CliRunner().invoke(app, args[:-7] + args[-3:])
    assert r.exit_code == 2 and "index:" in r.output


def test_index_with_a_math_benchmark_or_no_index_is_a_clear_error(data_dir, tmp_path):
    args = ["run", "--benchmark", "gsm-hard", "--out", str(tmp_path / "r"), "--data-dir", str(data_dir)]
    r = CliRunner().invoke(app, args + ["--index", str(tmp_path)])
    assert r.exit_code == 2 and "--index gives the cot method passages on QA benchmarks only" in r.output
    r = CliRunner().invoke(app, ["run", "--benchmark", "hotpotqa-distractor", "--out", str(tmp_path / "q"),
                                 "--data-dir", str(data_dir), "--index", str(tmp_path / "nope")])
    assert r.exit_code == 2 and not (tmp_path / "q" / "config.json").exists()
