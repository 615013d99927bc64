"""`tinyact eval run --benchmark my.jsonl --kind qa|math`: your own questions, graded, resumable, reported."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tinyact.eval.cli import app
from tinyact.models.engines import ReplayEngine

runner = CliRunner()


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def replay(monkeypatch):
    """load_engine hands out ReplayEngines answering from a queue, one response per question."""
    import tinyact.models.engines as engines

    answers: list[str] = []
    made: list[ReplayEngine] = []

    def load_engine(model, engine="transformers", **kw):
        e = ReplayEngine(list(answers), model=model)
        answers.clear()
        made.append(e)
        return e

    monkeypatch.setattr(engines, "load_engine", load_engine)
    return answers, made


def test_math_jsonl_run_resume_and_report(tmp_path, replay):
    answers, made = replay
    data = tmp_path / "mine.jsonl"
    rows = [
        {"question": "What is 2+2?", "answer": 4},
        {"id": "half", "question": "Half of 1?", "answer": ["1/2", "0.5"], "topic": "fractions"},
        {"question": "A third as a fraction?", "answer": "\\frac{1}{3}"},
    ]
    write_jsonl(data, rows)
    out = tmp_path / "run"
    args = ["run", "--benchmark", str(data), "--kind", "math", "--out", str(out), "--model", "tiny", "--no-progress"]
    answers += ["\\boxed{4}", "\\boxed{0.5}", "\\boxed{1/4}"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "mine:file cot k=1: accuracy 0.667 (math_equiv) on 3 questions" in r.output
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [x["id"] for x in results] == ["1", "half", "3"]
    assert [x["score"]["correct"] for x in results] == [True, True, False]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["benchmark"] == "mine" and cfg["kind"] == "math" and cfg["benchmark_file"] == str(data.resolve())

    # The file grows: a rerun answers only the new question.
    write_jsonl(data, [*rows, {"id": "big", "question": "2**70?", "answer": 2**70}])
    answers += [f"\\boxed{{{2**70}}}"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "accuracy 0.750 (math_equiv) on 4 questions" in r.output
    assert len(made[-1].calls) == 1 and len(made[-1].calls[0]["conversations"]) == 1

    r = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "| mine:file | 4 |" in r.output


def test_qa_jsonl_with_aliases(tmp_path, replay):
    answers, _ = replay
    data = tmp_path / "capitals.jsonl"
    write_jsonl(data, [
        {"id": "fr", "question": "Capital of France?", "answer": ["Paris", "Paris, France"]},
        {"id": "jp", "question": "Capital of Japan?", "answer": "Tokyo"},
    ])
    answers += ["<answer>Paris, France</answer>", "<answer>Kyoto</answer>"]
    out = tmp_path / "qa"
    r = runner.invoke(app, ["run", "--benchmark", str(data), "--kind", "qa", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "capitals:file cot k=1: accuracy 0.500 (em) on 2 questions" in r.output
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert results[0]["score"]["details"]["f1"] == 1.0 and results[1]["score"]["details"]["f1"] == 0.0


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"question": "q", "answer": 1}], [], "--kind qa|math is needed"),
        ([{"question": "q", "answer": 1}], ["--kind", "poetry"], "kind must be qa or math, got 'poetry'"),
        ([{"question": "q"}], ["--kind", "qa"], "bad.jsonl:1: answer must be a string, a number"),
        ([{"question": "q", "answer": "a"}, {"answer": "b"}], ["--kind", "qa"], "bad.jsonl:2: question must be"),
        ([{"id": 1, "question": "q", "answer": "a"}, {"id": 1, "question": "r", "answer": "b"}], ["--kind", "qa"],
         "bad.jsonl:2: duplicate id '1'"),
    ],
)
def test_bad_files_are_one_clear_line(tmp_path, rows, extra, message):
    data = tmp_path / "bad.jsonl"
    write_jsonl(data, rows)
    r = runner.invoke(app, ["run", "--benchmark", str(data), "--out", str(tmp_path / "r"), *extra])
    assert r.exit_code == 2 and message in r.output, r.output
    assert "Traceback" not in r.output


def test_missing_file_is_one_clear_line(tmp_path):
    r = runner.invoke(app, ["run", "--benchmark", str(tmp_path / "gone.jsonl"), "--kind", "qa",
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "benchmark file not found" in r.output, r.output


def test_agent_method_on_a_jsonl_benchmark(tmp_path, monkeypatch):
    import tinyact.models.engines as engines
    from tinyact.models.engines.scripted import ScriptedEngine, act

    engine = ScriptedEngine(lambda task: [act("final_answer(2 + 2)")])
    monkeypatch.setattr(engines, "load_engine", lambda *a, **kw: engine)
    data = tmp_path / "sums.jsonl"
    write_jsonl(data, [{"question": "2 + 2?", "answer": 4}, {"question": "3 + 3?", "answer": 6}])
    out = tmp_path / "agent"
    r = runner.invoke(app, ["run", "--benchmark", str(data), "--kind", "math", "--method", "agent", "--out", str(out),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "sums:file agent k=1: accuracy 0.500" in r.output
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 2
