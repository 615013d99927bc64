"""Grading and filtering: every reason counted, recovered execution errors kept."""

from __future__ import annotations

import json

from tinyact.distill import filter_file, filter_trajectories, reject_reason
from tinyact.schema import CodeAction, ExecError, ExecResult, Step, Trajectory


def _step(i, *, code="final_answer(1)", error=None, parse_error=None, final=None):
    action = CodeAction(thought="t", code="" if parse_error else code, blocks=[] if parse_error else [code],
                        parse_error=parse_error)
    result = None
    if parse_error is None:
        result = ExecResult(error=ExecError(type="NameError", message="x") if error else None,
                            called_final_answer=final is not None, final_answer=final)
    return Step(index=i, model_output=f"Thought: t\nCode:\n```py\n{code}\n```", action=action,
                observation="obs", result=result, error="err" if (error or parse_error) else None)


def _traj(qid, steps, answer, gold, end="final_answer"):
    return Trajectory(id=qid, task="What?", steps=steps, final_answer=answer, end_reason=end,
                      metadata={"question_id": qid, "gold": gold, "grader": "code"})


def _cases():
    return [
        _traj("good", [_step(0, final=42)], 42, 42),
        _traj("wrong", [_step(0, final=41)], 41, 42),
        _traj("noanswer", [_step(0)], None, 42),
        _traj("parse", [_step(0, parse_error="no code block"), _step(1, final=42)], 42, 42),
        _traj("steps", [_step(0), _step(1)], None, 42, end="max_steps"),
        _traj("budget", [_step(0)], None, 42, end="time_budget"),
        _traj("recovered", [_step(0, error=True), _step(1, final=42)], 42, 42),
        _traj("good", [_step(0, final=1)], 1, 42),  # a duplicate of a question: the first one counts
    ]


def test_reasons_and_counts():
    kept, report = filter_trajectories(_cases())
    assert [t.id for t in kept] == ["good", "recovered"]
    assert report.total == 7 and report.kept == 2 and report.duplicates == 1
    assert report.kept_with_recovered_errors == 1
    assert report.rejected == {"out_of_steps": 1, "ended_early": 1, "parse_error": 1, "wrong_answer": 2,
                               "execution_error": 0}


def test_recovered_errors_can_be_dropped():
    kept, report = filter_trajectories(_cases(), keep_recovered_errors=False)
    assert [t.id for t in kept] == ["good"]
    assert report.rejected["execution_error"] == 1


def test_grades_when_not_graded_yet_and_uses_stored_grade():
    t = _traj("x", [_step(0, final="42")], "42", 42)
    assert reject_reason(t) is None  # graded with the code checker: "42" == 42
    t.metadata["correct"] = False  # a stored grade wins
    assert reject_reason(t) == "wrong_answer"


def test_filter_file_writes_kept_and_report(tmp_path):
    src, kept, rep = tmp_path / "t.jsonl", tmp_path / "k.jsonl", tmp_path / "r.json"
    src.write_text("".join(t.to_jsonl() + "\n" for t in _cases()) + '{"torn": ')
    report = filter_file(src, kept, report_path=rep)
    assert [Trajectory.from_jsonl(line).id for line in kept.read_text().splitlines()] == ["good", "recovered"]
    assert json.loads(rep.read_text())["rejected"]["wrong_answer"] == 2
    assert report.kept == 2
