"""`tinyact distill ...`: commands registered, filter and sft-data over a work folder, config errors as one line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tinyact.distill.cli import app
from tinyact.schema import CodeAction, ExecResult, Step, Trajectory

runner = CliRunner()


def test_commands_listed():
    from tinyact.cli import app as root

    result = runner.invoke(root, ["distill", "--help"])
    assert result.exit_code == 0
    for cmd in ("prefixes", "collect", "filter", "sft-data", "train", "export", "eval", "all"):
        assert cmd in result.output


def _traj(qid, answer, gold):
    step = Step(index=0, model_output=f"Thought: t\nCode:\n```py\nfinal_answer({answer})\n```",
                action=CodeAction(code=f"final_answer({answer})"), observation="",
                result=ExecResult(called_final_answer=True, final_answer=answer))
    return Trajectory(task="What?", steps=[step], final_answer=answer, end_reason="final_answer",
                      metadata={"question_id": qid, "gold": gold, "grader": "code"})


def test_filter_and_sft_data(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "trajectories.jsonl").write_text(_traj("a", 1, 1).to_jsonl() + "\n" + _traj("b", 2, 3).to_jsonl() + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"workdir: {work}\ntasks: [{{source: code_tasks, n: 2}}]\n")
    r = runner.invoke(app, ["filter", str(cfg)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["kept"] == 1 and json.loads(r.output)["rejected"]["wrong_answer"] == 1
    r = runner.invoke(app, ["sft-data", str(cfg)])
    assert r.exit_code == 0, r.output
    lines = (work / "sft.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["id"] == "a"


def test_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 0\n")
    r = runner.invoke(app, ["filter", str(cfg)])
    assert r.exit_code == 2 and "max_steps must be >= 1" in r.output
