"""The resumable runner: JSONL per question, crash + resume without duplicates, truncated lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyact.errors import ConfigError
from tinyact.eval.datasets import Benchmark, Question
from tinyact.eval.runner import Prediction, load_results, run_eval


def _bench(n: int = 10) -> Benchmark:
    qs = [Question(f"q{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(n)]
    return Benchmark(name="toy", kind="math", split="test", questions=qs, path=Path("toy.json"))


class Solver:
    """Answers i+i correctly for even i, wrong for odd i; can crash after some calls."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.crash_after = crash_after

    def __call__(self, questions):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls.append([q.id for q in questions])
        out = []
        for q in questions:
            i = int(q.id[1:])
            answer = 2 * i if i % 2 == 0 else 2 * i + 1
            out.append(Prediction(text=f"\\boxed{{{answer}}}", steps=2, tokens=10, format_error=i == 3))
        return out


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_full_run_writes_results_config_summary(tmp_path):
    out = tmp_path / "run"
    summary = run_eval(_bench(), Solver(), out, batch_size=4, method="cot",
                       config={"model": "m", "samples": 1, "prompt_version": "cot-v1"}, progress=False)
    assert summary.n == 10 and summary.accuracy == 0.5
    assert summary.metric == "math_equiv" and summary.mean_steps == 2 and summary.mean_tokens == 10
    assert summary.format_error_rate == pytest.approx(0.1)
    assert summary.seconds_per_question >= 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["benchmark"] == "toy" and cfg["method"] == "cot" and cfg["model"] == "m"
    assert cfg["metric"] == "math_equiv" and cfg["prompt_version"] == "cot-v1" and cfg["samples"] == 1
    assert json.loads((out / "summary.json").read_text())["accuracy"] == 0.5
    lines = _lines(out)
    assert [r["id"] for r in lines] == [f"q{i}" for i in range(10)]
    assert lines[0]["score"]["metric"] in ("string", "numeric") and lines[0]["score"]["correct"]
    assert lines[1]["score"]["metric"] == "math_equiv" and not lines[1]["score"]["correct"]


def test_crash_then_resume_has_no_duplicates(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_eval(_bench(), Solver(crash_after=2), out, batch_size=3, progress=False)
    assert [r.id for r in load_results(out)] == [f"q{i}" for i in range(6)]
    solver = Solver()
    summary = run_eval(_bench(), solver, out, batch_size=3, progress=False)
    assert solver.calls == [["q6", "q7", "q8"], ["q9"]]  # done ids skipped
    ids = [r["id"] for r in _lines(out)]
    assert ids == [f"q{i}" for i in range(10)] and summary.n == 10
    # a third run has nothing left to do
    again = Solver()
    run_eval(_bench(), again, out, batch_size=3, progress=False)
    assert again.calls == [] and len(_lines(out)) == 10


def test_whole_last_line_without_its_newline_is_kept(tmp_path):
    out = tmp_path / "run"
    run_eval(_bench(4), Solver(), out, batch_size=2, progress=False)
    path = out / "results.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # killed between a record and its newline
    solver = Solver()
    run_eval(_bench(5), solver, out, batch_size=2, progress=False)
    assert solver.calls == [["q4"]]  # q3 counts as done: kept, not cut
    assert [r["id"] for r in _lines(out)] == ["q0", "q1", "q2", "q3", "q4"]


def test_truncated_last_line_is_dropped_and_redone(tmp_path):
    out = tmp_path / "run"
    run_eval(_bench(4), Solver(), out, batch_size=2, progress=False)
    path = out / "results.jsonl"
    raw = path.read_bytes()
    last_start = raw.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(raw[: last_start + 25])  # the crash cut the last line mid-write
    assert [r.id for r in load_results(out)] == ["q0", "q1", "q2"]
    solver = Solver()
    summary = run_eval(_bench(4), solver, out, batch_size=2, progress=False)
    assert solver.calls == [["q3"]]
    assert [r["id"] for r in _lines(out)] == ["q0", "q1", "q2", "q3"]  # every line parses
    assert summary.n == 4


def test_limit_and_resume_with_larger_limit(tmp_path):
    out = tmp_path / "run"
    assert run_eval(_bench(), Solver(), out, limit=3, progress=False).n == 3
    solver = Solver()
    assert run_eval(_bench(), solver, out, limit=5, batch_size=8, progress=False).n == 5
    assert solver.calls == [["q3", "q4"]]


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    out = tmp_path / "run"
    run_eval(_bench(2), Solver(), out, config={"model": "a"}, progress=False)
    with pytest.raises(ConfigError, match="model: 'a' -> 'b'"):
        run_eval(_bench(2), Solver(), out, config={"model": "b"}, progress=False)
    with pytest.raises(ConfigError, match="method"):
        run_eval(_bench(2), Solver(), out, method="agent", config={"model": "a"}, progress=False)


def test_solver_must_return_one_prediction_per_question(tmp_path):
    with pytest.raises(ConfigError, match="returned 0 predictions for 2"):
        run_eval(_bench(2), lambda qs: [], tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        run_eval(_bench(2), Solver(), tmp_path / "run2", batch_size=0, progress=False)


class LosesTheLastBatch(Solver):
    """A solver that spreads batches (as RaySolve does) but hands back all but the last."""

    def map_batches(self, batches):
        for batch in batches[:-1]:
            yield self(batch), 0.0, 1.0


def test_a_spreading_solver_that_loses_batches_is_an_error_not_a_short_run(tmp_path):
    solver = LosesTheLastBatch()
    with pytest.raises(ConfigError, match="answered 2 of 3 batches"):
        run_eval(_bench(6), solver, tmp_path / "run", batch_size=2, progress=False)
    assert [r.id for r in load_results(tmp_path / "run")] == ["q0", "q1", "q2", "q3"]  # what came back is kept


def test_progress_bar_runs(tmp_path):
    summary = run_eval(_bench(3), Solver(), tmp_path / "run", progress=True)
    assert summary.n == 3


def test_prediction_from_trajectory():
    from tinyact.eval.runner import prediction_from_trajectory
    from tinyact.schema import CodeAction, Step, Trajectory, Usage

    steps = [
        Step(index=0, model_output="Thought: oops", action=CodeAction(parse_error="no code block"), observation="E"),
        Step(index=1, model_output="Thought: ok\n```py\nfinal_answer(13138980.0)\n```",
             action=CodeAction(thought="ok", code="final_answer(13138980.0)"), observation=""),
    ]
    traj = Trajectory(task="t", steps=steps, final_answer=13138980.0, end_reason="final_answer",
                      usage=Usage(prompt_tokens=50, completion_tokens=20), seconds=1.5)
    p = prediction_from_trajectory(traj)
    assert p.text == "13138980.0" and p.steps == 2 and p.tokens == 20 and p.prompt_tokens == 50
    assert p.format_error and p.trajectory_id == traj.id and p.end_reason == "final_answer"
    assert p.raw.startswith("Thought: ok") and p.seconds == 1.5
    empty = prediction_from_trajectory(Trajectory(task="t", end_reason="max_steps"))
    assert empty.text is None and empty.steps == 0 and not empty.format_error


def test_wall_time_is_the_union_of_question_spans():
    from tinyact.eval.runner import Result, Score, summarize

    def result(qid: str, start: float, end: float) -> Result:
        return Result(id=qid, question="?", gold="1", prediction=Prediction(text="1", seconds=end - start),
                      score=Score(correct=True, value=1.0, metric="em"), finished_at=end)

    # two questions side by side (0-10, 2-8), then a resumed session much later (100-105)
    s = summarize([result("a", 0, 10), result("b", 2, 8), result("c", 100, 105)], {})
    assert s.wall_seconds == pytest.approx(15.0)
    assert s.seconds_per_question == pytest.approx((10 + 6 + 5) / 3)
    # a batched method (CoT): each question carries a share of the batch time; the span is the whole batch
    batched = [result(q, 200 - 2.5, 200).model_copy(update={"batch_started_at": 190.0}) for q in "defg"]
    assert summarize(batched, {}).wall_seconds == pytest.approx(10.0)
    # results written before batches recorded their start: CoT's seconds are shares of sequential batches
    old = [result(q, 297.5 + i * 0.001, 300 + i * 0.001) for i, q in enumerate("hijk")]
    assert summarize(old, {"method": "cot"}).wall_seconds == pytest.approx(10.0)
    assert summarize(old, {"method": "agent"}).wall_seconds == pytest.approx(2.503)


def test_run_records_the_batch_start(tmp_path):
    run_eval(_bench(4), Solver(), tmp_path / "r", batch_size=2, progress=False)
    rows = load_results(tmp_path / "r")
    assert all(r.batch_started_at is not None and r.batch_started_at <= r.finished_at for r in rows)
    assert rows[0].batch_started_at == rows[1].batch_started_at != rows[2].batch_started_at


def test_a_run_folder_resumes_only_with_the_same_loop_notes_setting(tmp_path):
    """repeat_notes changes what the agent sees: a folder made with it on does not resume with it off;
    a folder from before the key existed counts as on."""
    import json

    from tinyact.errors import ConfigError
    from tinyact.eval.runner import _check_config

    path = tmp_path / "config.json"
    base = {"benchmark": "gsm-hard", "split": "test", "method": "agent", "model": "m", "samples": 1,
            "prompt_version": "full-v2"}
    path.write_text(json.dumps(base))  # written before repeat_notes was recorded
    _check_config(path, {**base, "repeat_notes": True})
    with pytest.raises(ConfigError, match=r"repeat_notes: True -> False"):
        _check_config(path, {**base, "repeat_notes": False})
