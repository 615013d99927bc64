"""Trajectory collection: graded lines, prefixes on the first step, resume after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tinyact.agents.agent import Agent
from tinyact.distill import collect_trajectories, summarize_trajectories
from tinyact.distill.collect import done_question_ids
from tinyact.eval.datasets import Question
from tinyact.schema import Trajectory

from .fakes import FAKE_ENGINE_SOURCE, ExprEngine  # type: ignore[attr-defined]

QUESTIONS = [(f"q{i}", f"What is {i} * 7?", i * 7) for i in range(6)]


def _questions():
    return [Question(qid, q, a, {"grader": "code", "source": "test"}) for qid, q, a in QUESTIONS]


def _lines(path: Path) -> list[Trajectory]:
    return [Trajectory.from_jsonl(line) for line in path.read_text().splitlines() if line.strip()]


def test_collect_grades_and_uses_prefixes(tmp_path):
    engine = ExprEngine()
    qs = _questions()[:3] + [Question("err", "What is 2 + 2? ERR", 4, {"grader": "code"})]
    out = tmp_path / "t.jsonl"
    with Agent(engine, max_steps=3) as agent:
        summary = collect_trajectories(agent, qs, out, prefixes={"q1": "Thought: seven times one.\n\n"},
                                       workers=4, progress=False)
    trajs = {t.metadata["question_id"]: t for t in _lines(out)}
    assert set(trajs) == {"q0", "q1", "q2", "err"}
    assert all(t.metadata["correct"] for t in trajs.values())
    assert trajs["q1"].steps[0].model_output.startswith("Thought: seven times one.\n\nThought: compute it.")
    assert trajs["q1"].metadata["prefix_used"] and not trajs["q0"].metadata["prefix_used"]
    # the prefix is given to the first step only
    assert engine.prefixes.count("Thought: seven times one.\n\n") == 1
    assert len(trajs["err"].steps) == 2 and trajs["err"].steps[0].result.error is not None
    assert summary.done == 4 and summary.solved == 4 and summary.questions == 4
    assert summary.completion_tokens > 0 and summary.end_reasons == {"final_answer": 4}


def test_a_changed_prefix_reruns_its_trajectory_and_keeps_the_old_one_aside(tmp_path):
    qs, out = _questions()[:3], tmp_path / "t.jsonl"
    old = {"q0": "Thought: seven times zero, so 0.\n\n", "q1": "Thought: seven times one.\n\n"}
    with Agent(ExprEngine(), max_steps=3) as agent:
        collect_trajectories(agent, qs, out, prefixes=old, workers=2, progress=False)
    first = {t.metadata["question_id"]: t for t in _lines(out)}
    new = {"q0": "Thought: seven times zero.\n\n", "q1": old["q1"]}  # q0's prefix made by a newer rule
    engine = ExprEngine()
    with Agent(engine, max_steps=3) as agent:
        summary = collect_trajectories(agent, qs, out, prefixes=new, workers=2, progress=False)
    trajs = {t.metadata["question_id"]: t for t in _lines(out)}
    assert summary.done == 3 and set(trajs) == {"q0", "q1", "q2"}
    assert trajs["q0"].prefix == new["q0"] and trajs["q0"].id != first["q0"].id  # run again, with today's
    assert trajs["q1"].id == first["q1"].id and trajs["q2"].id == first["q2"].id  # unchanged: not rerun
    assert engine.prefixes == [new["q0"]]
    aside = _lines(tmp_path / "t.stale.jsonl")
    assert [t.id for t in aside] == [first["q0"].id]  # nothing lost
    with Agent(ExprEngine(), max_steps=3) as agent:  # without prefixes (a no-prefix run): nothing is stale
        collect_trajectories(agent, qs, out, workers=2, progress=False)
    assert len(_lines(out)) == 3 and len(_lines(tmp_path / "t.stale.jsonl")) == 1


def test_engine_failure_leaves_question_undone_then_rerun_finishes(tmp_path):
    out = tmp_path / "t.jsonl"
    with Agent(ExprEngine(fail_after=2), max_steps=2) as agent:
        s = collect_trajectories(agent, _questions()[:4], out, workers=1, progress=False)
    assert s.done == 2 and s.failed_runs == 2
    with Agent(ExprEngine(), max_steps=2) as agent:
        s = collect_trajectories(agent, _questions()[:4], out, workers=1, progress=False)
    assert s.done == 4 and s.failed_runs == 0
    assert sorted(t.metadata["question_id"] for t in _lines(out)) == ["q0", "q1", "q2", "q3"]


SCRIPT = textwrap.dedent(
    """
    import sys
    from tinyact.agents.agent import Agent
    from tinyact.distill import collect_trajectories
    from tinyact.eval.datasets import Question
    {engine}
    qs = [Question(qid, q, a, {{"grader": "code"}}) for qid, q, a in {questions!r}]
    with Agent(ExprEngine(delay=0.3), max_steps=2) as agent:
        collect_trajectories(agent, qs, sys.argv[1], workers=2, progress=False)
    """
)


def test_resume_after_sigkill(tmp_path):
    out = tmp_path / "t.jsonl"
    script = tmp_path / "collect.py"
    script.write_text(SCRIPT.format(engine=FAKE_ENGINE_SOURCE, questions=QUESTIONS))
    proc = subprocess.Popen([sys.executable, str(script), str(out)], start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"collector exited early with {proc.returncode}")
            time.sleep(0.05)
        else:
            pytest.fail("collector wrote nothing in 120 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = done_question_ids(out)
    assert 2 <= len(done_before) < len(QUESTIONS)
    with open(out, "a") as f:  # what a kill in the middle of a write leaves
        f.write(_lines(out)[0].to_jsonl()[:57])
    with Agent(ExprEngine(), max_steps=2) as agent:
        summary = collect_trajectories(agent, _questions(), out, workers=2, progress=False)
    ids = [t.metadata["question_id"] for t in _lines(out)]  # every line parses: the torn one was cut
    assert sorted(ids) == sorted(q for q, _, _ in QUESTIONS)  # all done, no duplicates
    assert summary.done == len(QUESTIONS) and summary.solved == len(QUESTIONS)
    assert summarize_trajectories(out).done == len(QUESTIONS)


def test_collect_finishes_a_half_written_prefix_stage_first(tmp_path):
    """A run killed during the prefix stage left some prefixes: collect completes them, never uses a partial set."""
    import json

    from tinyact.distill.config import DistillConfig, TaskSource
    from tinyact.distill.pipeline import Pipeline

    qfile = tmp_path / "q.jsonl"
    qfile.write_text("".join(json.dumps({"id": qid, "question": q, "answer": a}) + "\n" for qid, q, a in QUESTIONS))
    cfg = DistillConfig(workdir=str(tmp_path / "w"), tasks=[TaskSource(source="jsonl", path=str(qfile))],
                        check_overlap=False, batch_size=2)
    p = Pipeline(cfg, progress=False)
    p._engine = ExprEngine()
    half = {"id": "q0", "prefix": "Thought: already here.\n\n", "cot": "", "first_thought": ""}
    cfg.paths["prefixes"].write_text(json.dumps(half) + "\n")
    summary = p.collect()
    assert summary["done"] == len(QUESTIONS)
    done = {json.loads(x)["id"] for x in cfg.paths["prefixes"].read_text().splitlines()}
    assert done == {qid for qid, _, _ in QUESTIONS}
    trajs = {t.metadata["question_id"]: t for t in _lines(cfg.paths["trajectories"])}
    assert trajs["q0"].metadata["prefix_used"]
    assert sum(t.metadata["prefix_used"] for t in trajs.values()) == sum(
        bool(json.loads(x)["prefix"]) for x in cfg.paths["prefixes"].read_text().splitlines())
