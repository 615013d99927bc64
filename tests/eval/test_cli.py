"""The `tinyact eval` typer sub-app: list, run (CoT through a replay engine), resume, report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tinyact.eval.cli import app
from tinyact.models.engines import ReplayEngine

runner = CliRunner()


def test_list(data_dir):
    r = runner.invoke(app, ["list", "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    assert "gsm-hard" in r.output and "test=500" in r.output and "+corpus" in r.output


def test_run_cot_then_resume_then_report(data_dir, tmp_path, monkeypatch):
    import tinyact.models.engines as engines

    made = []

    def fake_load_engine(model, engine="transformers", **kw):
        e = ReplayEngine(["\\boxed{13138980}", "\\boxed{1}", "\\boxed{2}"][len(made) * 2 :][:2], model=model)
        made.append(e)
        return e

    monkeypatch.setattr(engines, "load_engine", fake_load_engine)
    out = tmp_path / "gsm"
    args = ["run", "--benchmark", "gsm-hard", "--limit", "2", "--out", str(out), "--model", "tiny",
            "--data-dir", str(data_dir), "--no-progress"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "gsm-hard:test cot k=1: accuracy 0.500 (math_equiv) on 2 questions" in r.output
    r = runner.invoke(app, args[:4] + ["3"] + args[5:])  # --limit 3: one more question
    assert r.exit_code == 0, r.output
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "tiny" and cfg["engine"] == "transformers" and cfg["method"] == "cot"
    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "| gsm | cot | tiny | 1 | gsm-hard:test | 3 |" in r.output
    assert (tmp_path / "rep" / "accuracy_by_benchmark.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "agent", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--method", "magic"], "--method must be cot or agent"),
        (["--benchmark", "nope"], "unknown benchmark"),
    ],
)
def test_run_errors_are_clear(data_dir, tmp_path, extra, message):
    args = ["run", "--benchmark", "gsm-hard", "--out", str(tmp_path / "r"), "--data-dir", str(data_dir), *extra]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and message in r.output


def test_dtype_reaches_the_engine_and_the_run_config(data_dir, tmp_path, monkeypatch):
    import tinyact.models.engines as engines

    seen = []

    def fake_load_engine(model, engine="transformers", **kw):
        seen.append(kw)
        return ReplayEngine(["\\boxed{1}"], model=model)

    monkeypatch.setattr(engines, "load_engine", fake_load_engine)
    out = tmp_path / "bf16"
    r = runner.invoke(app, ["run", "--benchmark", "gsm-hard", "--limit", "1", "--out", str(out), "--model", "tiny",
                            "--dtype", "bfloat16", "--data-dir", str(data_dir), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert seen == [{"dtype": "bfloat16"}]
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"


def test_agent_method_with_k_samples_uses_the_paper_sampling(data_dir, tmp_path, monkeypatch):
    import tinyact.models.engines as engines

    code = "Thought: add\nCode:\n```py\nfinal_answer(13138980)\n```"
    replay = ReplayEngine([[code] * 8])
    monkeypatch.setattr(engines, "load_engine", lambda model, engine="transformers", **kw: replay)
    out = tmp_path / "agent-k8"
    r = runner.invoke(app, ["run", "--benchmark", "gsm-hard", "--limit", "1", "--out", str(out), "--model", "tiny",
                            "--method", "agent", "-k", "8", "--data-dir", str(data_dir), "--no-progress"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["samples"], cfg["temperature"], cfg["top_p"]) == (8, 0.4, 0.8)
    assert replay.calls[0]["n"] == 8 and replay.calls[0]["sampling"].temperature == 0.4
    assert "accuracy 1.000" in r.output


def test_no_repeat_notes_turns_loop_detection_off_for_the_run(data_dir, tmp_path, monkeypatch):
    import tinyact.models.engines as engines

    look = "Thought: look\nCode:\n```py\nprint(21)\n```"
    replay = ReplayEngine([look, look, "Thought: done\nCode:\n```py\nfinal_answer(13138980)\n```"])
    monkeypatch.setattr(engines, "load_engine", lambda model, engine="transformers", **kw: replay)
    out = tmp_path / "agent-noloop"
    r = runner.invoke(app, ["run", "--benchmark", "gsm-hard", "--limit", "1", "--out", str(out), "--model", "tiny",
                            "--method", "agent", "--no-repeat-notes", "--data-dir", str(data_dir), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["repeat_notes"] is False
    steps = json.loads((out / "trajectories.jsonl").read_text())["steps"]
    assert len(steps) == 3 and "21" in steps[1]["observation"] and "identical" not in steps[1]["observation"]


def test_agent_method_runs_questions_side_by_side_through_one_batching_engine(data_dir, tmp_path, monkeypatch):
    import tinyact.models.engines as engines

    code = "Thought: add\nCode:\n```py\nfinal_answer(13138980)\n```"  # right for question 1 only
    replay = ReplayEngine([code, code])
    made = []
    monkeypatch.setattr(engines, "load_engine", lambda model, engine="transformers", **kw: made.append(kw) or replay)
    out = tmp_path / "agent-par"
    r = runner.invoke(app, ["run", "--benchmark", "gsm-hard", "--limit", "2", "--out", str(out), "--model", "tiny",
                            "--method", "agent", "--parallel", "2", "--dtype", "bfloat16", "--data-dir", str(data_dir),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "accuracy 0.500" in r.output and "on 2 questions" in r.output
    assert made == [{"dtype": "bfloat16"}]  # one engine, shared
    assert sum(len(c["conversations"]) for c in replay.calls) == 2
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["score"]["correct"] for r in results] == [True, False]  # each prediction stays with its question
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 2
