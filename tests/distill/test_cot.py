"""The CoT-distillation baseline's data: `distill cot` (reusing and continuing prefix rows, grading, resuming,
RAG for QA) and `distill sft-data --data cot`, on real training questions, a real BM25 index and the real graders.
The teacher is a ReplayEngine: it is the stage's input."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tinyact import jsonl
from tinyact.distill.config import DistillConfig, TaskSource
from tinyact.distill.pipeline import Pipeline
from tinyact.errors import ConfigError, ReplayError
from tinyact.models.engines import ReplayEngine
from tinyact.schema import Completion


def _pipeline(tmp_path: Path, engine: ReplayEngine, **kw) -> Pipeline:
    kw = {"tasks": [TaskSource(source="benchmark", name="math", split="train", n=3)], "batch_size": 8, **kw}
    config = DistillConfig(workdir=str(tmp_path / "run"), teacher="t", check_overlap=False, **kw)
    p = Pipeline(config, progress=False)
    p._engine = engine  # the teacher: scripted input of the stage
    return p


def p_lines(p: Pipeline) -> list[str]:
    return p.paths["prefixes"].read_text().splitlines()


def _boxed(answer: object) -> str:
    return f"so the answer is $\\boxed{{{answer}}}$."


def test_prefix_rows_are_reused_or_continued_and_answers_graded(shared_data, tmp_path):
    probe = _pipeline(tmp_path, ReplayEngine([]))
    q0, q1, q2 = probe.questions()
    # the prefixes stage (256 tokens, stopping at the first blank line): q0's answer is one paragraph that
    # finished in 40 tokens, q1 stopped after its first paragraph, q2 was cut at the budget
    first1 = "First, the setup."
    probe._engine = ReplayEngine([
        Completion(text=f"Easy: {_boxed(q0.answer)}", finish_reason="eos", completion_tokens=40),
        Completion(text=first1, finish_reason="stop", stop="\n\n", completion_tokens=90),
        Completion(text="Another start, cut", finish_reason="length", completion_tokens=256),
    ])
    probe.prefixes()
    probe._engine.assert_consumed()
    stopped = json.loads(p_lines(probe)[1])
    assert stopped["cot"] == first1 and stopped["stop"] == "\n\n" and stopped["finish_reason"] == "stop"

    # the cot stage: one call per token budget, continuing both unfinished rows; q0 is taken as it is
    cont1 = f"{first1}\n\nThen the computation " + _boxed(q1.answer)
    teacher = ReplayEngine([cont1, "Another start, cut " + _boxed("-12345")])
    p = _pipeline(tmp_path, teacher)
    counts = p.cot()
    teacher.assert_consumed()
    assert [c["prefix"] for c in teacher.calls] == [[f"{first1}\n\n"], ["Another start, cut"]]  # nothing twice
    assert [c["sampling"].max_tokens for c in teacher.calls] == [1024 - 90, 1024 - 256]
    assert all(c["sampling"].temperature == 0.0 for c in teacher.calls)
    rows = {r["id"]: r for r in jsonl.iter_lines(p.paths["cot"])}
    assert rows[q0.id]["origin"] == "prefixes" and rows[q0.id]["completion_tokens"] == 40
    assert rows[q1.id]["origin"] == "continued" and rows[q1.id]["text"] == cont1
    assert rows[q1.id]["completion_tokens"] > 90 and not rows[q1.id]["truncated"]
    assert [rows[q.id]["correct"] for q in (q0, q1, q2)] == [True, True, False]  # the real math grader
    assert rows[q2.id]["answer"] == "-12345"
    assert rows[q0.id]["prompt"] == "cot-v1/math" and rows[q0.id]["teacher"] == "t" and rows[q0.id]["passages"] is None
    assert counts["correct"] == 2 and counts["origin"] == {"prefixes": 1, "continued": 2}
    assert counts["per_source"] == {"math:train": {"answered": 3, "correct": 2}}
    manifest = json.loads(p.paths["cot"].with_name("cot.jsonl.manifest.json").read_text())
    assert manifest["counts"]["questions"] == 3 and manifest["cot_max_tokens"] == 1024

    # a rerun has nothing left to ask
    again = _pipeline(tmp_path, ReplayEngine([]))
    assert again.cot()["answered"] == 3

    # SFT data: only the correct answers, asked exactly as the CoT evaluation asks
    n = p.sft_data(data="cot")
    examples = list(jsonl.iter_lines(p.paths["sft_cot"]))
    assert n == 2 and [e["id"] for e in examples] == [q0.id, q1.id]
    from tinyact.eval.cot import CoTSolver

    solver_engine = ReplayEngine(["x", "x"])
    CoTSolver(solver_engine, "math")([q0, q1])
    sent = [[m.model_dump() for m in conv] for conv in solver_engine.calls[0]["conversations"]]
    assert [e["messages"][:2] for e in examples] == sent
    assert examples[1]["messages"][2] == {"role": "assistant", "content": rows[q1.id]["text"]}
    m = json.loads(p.paths["sft_cot"].with_name("sft-cot.jsonl.manifest.json").read_text())
    assert m["counts"]["examples"] == 2 and len(m["prompt_sha256"]) == 64


def test_a_killed_run_resumes_where_it_stopped(shared_data, tmp_path):
    probe = _pipeline(tmp_path, ReplayEngine([]), batch_size=1)
    qs = probe.questions()
    # the first batch is answered, then the teacher goes away
    p = _pipeline(tmp_path, ReplayEngine([_boxed(qs[0].answer)]), batch_size=1)
    with pytest.raises(ReplayError):
        p.cot()
    assert [r["id"] for r in jsonl.iter_lines(p.paths["cot"])] == [qs[0].id]
    with open(p.paths["cot"], "a") as f:
        f.write('{"id": "' + qs[1].id + '", "te')  # torn by the kill
    teacher = ReplayEngine([_boxed(qs[1].answer), "no idea"])
    p = _pipeline(tmp_path, teacher, batch_size=1)
    counts = p.cot()
    teacher.assert_consumed()
    asked = [c["conversations"][0][1].content for c in teacher.calls]
    assert [qs[1].question in a for a in asked] == [True, False] and qs[2].question in asked[1]
    assert [r["id"] for r in jsonl.iter_lines(p.paths["cot"])] == [q.id for q in qs]
    assert counts["correct"] == 2 and counts["origin"] == {"generated": 3}


def test_qa_with_an_index_is_asked_with_passages_and_trained_on_them(shared_data, tmp_path):
    from tinyact.eval.cot import CoTSolver
    from tinyact.tools.retrieval import build_index

    corpus = tmp_path / "hotpot.jsonl"
    with open(shared_data / "hotpotqa-distractor" / "train.jsonl", encoding="utf-8") as f:
        corpus.write_text("".join(itertools.islice(f, 3)), encoding="utf-8")
    index = build_index(corpus, tmp_path / "index", backend="bm25", progress=False)
    tasks = [TaskSource(source="benchmark", name="hotpotqa-distractor", split="train", n=2)]
    probe = _pipeline(tmp_path, ReplayEngine([]), tasks=tasks)
    q0, q1 = probe.questions()
    # a finished prefix row exists, but it had no passages: with an index the question is asked afresh
    probe._engine = ReplayEngine(["Recall.\n\n<answer>whatever</answer>", "Recall.\n\n<answer>x</answer>"])
    probe.prefixes()
    gold0 = q0.answer if isinstance(q0.answer, str) else q0.answer[0]
    teacher = ReplayEngine([f"From passage 1.\n<answer>{gold0}</answer> and more", "<answer>Nobody</answer>"])
    p = _pipeline(tmp_path, teacher, tasks=tasks, retrieval_index=str(tmp_path / "index"), cot_rag_k=3)
    counts = p.cot()
    call = teacher.calls[0]
    assert call["prefix"] is None and call["stop"] == ["</answer>"]
    assert call["conversations"][0][1].content.startswith("Retrieved passages")
    rows = list(jsonl.iter_lines(p.paths["cot"]))
    assert rows[0]["text"] == f"From passage 1.\n<answer>{gold0}</answer>"  # closing tag kept, the rest cut
    assert [r["correct"] for r in rows] == [True, False]  # EM, as the agent filter grades
    assert len(rows[0]["passages"]) == 3 and rows[0]["rag"] == {"index": str(tmp_path / "index"), "k": 3}
    assert rows[0]["prompt"] == "cot-v1/qa+rag-v1" and counts["with_passages"] == 2
    assert p.sft_data(data="cot") == 1
    (example,) = jsonl.iter_lines(p.paths["sft_cot"])
    # the student is trained on exactly what `eval run --method cot --index` will show it
    solver_engine = ReplayEngine(["x"])
    CoTSolver(solver_engine, "qa", retriever=index, k=3)([q0])
    assert example["messages"][:2] == [m.model_dump() for m in solver_engine.calls[0]["conversations"][0]]


def test_cli_cot_sft_data_errors_are_one_line(tmp_path):
    from tinyact.distill.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"workdir: {tmp_path / 'run'}\n")
    r = CliRunner().invoke(app, ["sft-data", str(cfg), "--data", "cot"])
    assert r.exit_code == 2 and "run `tinyact distill cot` first" in r.output
    r = CliRunner().invoke(app, ["sft-data", str(cfg), "--data", "magic"])
    assert r.exit_code == 2 and "--data must be agent or cot" in r.output
    cfg.write_text(f"workdir: {tmp_path / 'run'}\ncot_max_tokens: 0\n")
    r = CliRunner().invoke(app, ["cot", str(cfg)])
    assert r.exit_code == 2 and "cot_max_tokens must be >= 1" in r.output
