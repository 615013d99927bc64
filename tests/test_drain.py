"""Ctrl-C on long jobs: the first finishes and saves what is in flight and starts nothing new,
the second gives it up; a rerun continues (real subprocesses, real signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.distill.fakes import FAKE_ENGINE_SOURCE  # type: ignore[attr-defined]

QUESTIONS = [(f"q{i}", f"What is {i} * 7?", i * 7) for i in range(6)]

COLLECT = textwrap.dedent(
    """
    import sys
    from tinyact.agents.agent import Agent
    from tinyact.distill import collect_trajectories
    from tinyact.eval.datasets import Question
    {engine}
    from pathlib import Path

    class Marking(ExprEngine):  # leaves OUT.call<N> as model call N starts, so the test knows what is in flight
        def generate(self, *args, **kwargs):
            Path(f"{{sys.argv[1]}}.call{{self.calls + 1}}").touch()
            return super().generate(*args, **kwargs)

    qs = [Question(qid, q, a, {{"grader": "code"}}) for qid, q, a in {questions!r}]
    with Agent(Marking(delay=float(sys.argv[2])), max_steps=2) as agent:
        collect_trajectories(agent, qs, sys.argv[1], workers=2, progress=False)
    """
)

EVAL = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tinyact.eval.datasets import Benchmark, Question
    from tinyact.eval.runner import Prediction, run_eval
    qs = [Question(qid, q, str(a)) for qid, q, a in {questions!r}]
    bench = Benchmark(name="t", kind="qa", split="test", questions=qs, path=Path("x"))

    def solve(batch):  # the solver is this test's input: slow, always right; says which batch started
        Path(sys.argv[1] + ".started-" + batch[0].id).touch()
        time.sleep(float(sys.argv[2]))
        return [Prediction(text=q.answer) for q in batch]

    run_eval(bench, solve, sys.argv[1], batch_size=2, progress=False)
    """
)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _start(tmp_path: Path, source: str, out: Path, delay: float) -> subprocess.Popen:
    script = tmp_path / "job.py"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                       os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "stderr.txt"  # a file, not a pipe: the test reads it while the job runs
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, str(script), str(out), str(delay)], stderr=stderr, text=True,
                                env=env, start_new_session=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _wait_for_lines(proc: subprocess.Popen, path: Path, n: int) -> int:
    deadline = time.time() + 120
    while time.time() < deadline:
        if len(_lines(path)) >= n:
            return len(_lines(path))
        if proc.poll() is not None:
            pytest.fail(f"job exited early with {proc.returncode}: {proc.log.read_text()[-2000:]}")
        time.sleep(0.02)
    pytest.fail(f"job wrote fewer than {n} lines in 120 s")


def _wait_for_file(proc: subprocess.Popen, path: Path, what: str) -> None:
    """Until the job leaves the marker ``path`` (``what`` has started); fail if it exits or 120 s pass."""
    deadline = time.time() + 120
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{what} never started"


def _second_ctrl_c(proc: subprocess.Popen) -> float:
    """Ctrl-C twice, the second once the first has been taken (when it is sent, by ``time.monotonic()``).

    Two SIGINTs that arrive before Python's handler runs are one call of it: on a busy host a fixed pause
    between them can be too short, and the job then only drains.
    """
    proc.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    while "stopping:" not in proc.log.read_text() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert "stopping:" in proc.log.read_text(), "the first Ctrl-C was never taken"
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    return asked


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the job did not stop within 60 s of Ctrl-C")
    return proc.returncode, proc.log.read_text()


def test_collect_first_ctrl_c_saves_the_runs_in_flight_and_starts_no_new_one(tmp_path):
    out = tmp_path / "t.jsonl"
    # 2 workers, 2 s per model call: q0+q1 end together, then q2+q3 are in flight when Ctrl-C comes
    proc = _start(tmp_path, COLLECT.format(engine=FAKE_ENGINE_SOURCE, questions=QUESTIONS), out, 2.0)
    seen = _wait_for_lines(proc, out, 2)
    # q2 in flight: Ctrl-C now, not between q0+q1 ending and q2 starting
    _wait_for_file(proc, Path(f"{out}.call3"), "the third model call")
    proc.send_signal(signal.SIGINT)
    code, stderr = _finish(proc)
    assert code != 0, "a drained job must not look finished"
    assert "finishing the questions in flight" in stderr and "rerun the same command to continue" in stderr
    ids = [t["metadata"]["question_id"] for t in _lines(out)]
    assert seen < len(ids) < len(QUESTIONS), f"in flight saved, nothing new started: saw {seen}, ended with {ids}"
    assert len(ids) == len(set(ids))
    # the rerun does the rest, once each
    proc = _start(tmp_path, COLLECT.format(engine=FAKE_ENGINE_SOURCE, questions=QUESTIONS), out, 0.0)
    code, stderr = _finish(proc)
    assert code == 0, stderr[-2000:]
    assert sorted(t["metadata"]["question_id"] for t in _lines(out)) == sorted(q for q, _, _ in QUESTIONS)


def test_collect_second_ctrl_c_gives_up_the_runs_in_flight(tmp_path):
    out = tmp_path / "t.jsonl"
    proc = _start(tmp_path, COLLECT.format(engine=FAKE_ENGINE_SOURCE, questions=QUESTIONS), out, 3.0)
    seen = _wait_for_lines(proc, out, 2)  # q0 and q1; q2 and q3 are in flight
    _second_ctrl_c(proc)
    code, stderr = _finish(proc)
    assert code != 0 and "KeyboardInterrupt" in stderr
    assert len(_lines(out)) == seen, "the second Ctrl-C must not wait to save the runs in flight"


GIVE_UP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tinyact.agents.agent import Agent
    from tinyact.distill import collect_trajectories
    from tinyact.eval.datasets import Question
    {engine}
    BUSY = sys.argv[1] + ".busy"

    class Busy(ExprEngine):  # says when the runs are in flight (the drain is in place by then)
        def generate(self, *args, **kwargs):
            Path(BUSY).touch()
            return super().generate(*args, **kwargs)

    from tinyact.cli import app, main

    @app.command("slow-collect")  # the real entry point (typer turns Ctrl-C into exit 130), with this engine
    def slow_collect(out: str, delay: float) -> None:
        qs = [Question(qid, q, a, {{"grader": "code"}}) for qid, q, a in {questions!r}]
        with Agent(Busy(delay=delay), max_steps=2) as agent:
            collect_trajectories(agent, qs, out, workers=2, progress=False)

    sys.argv = ["tinyact", "slow-collect", *sys.argv[1:]]
    main()
    """
)


def test_second_ctrl_c_exits_without_waiting_for_the_model_calls_in_flight(tmp_path):
    out, delay = tmp_path / "t.jsonl", 90.0
    proc = _start(tmp_path, GIVE_UP.format(engine=FAKE_ENGINE_SOURCE, questions=QUESTIONS), out, delay)
    _wait_for_file(proc, Path(str(out) + ".busy"), "a model call")
    asked = _second_ctrl_c(proc)
    code, stderr = _finish(proc)
    assert code == 130 and "interrupted" in stderr, stderr[-2000:]
    assert time.monotonic() - asked < delay / 3, "the exit waited for the model calls it gave up"
    assert _lines(out) == []


def test_ctrl_c_after_the_last_question_started_leaves_a_whole_job(tmp_path):
    """Nothing was held back (both questions in flight): the job ends as if no Ctrl-C came, exit 0."""
    out = tmp_path / "t.jsonl"
    proc = _start(tmp_path, GIVE_UP.format(engine=FAKE_ENGINE_SOURCE, questions=QUESTIONS[:2]), out, 3.0)
    _wait_for_file(proc, Path(str(out) + ".busy"), "a model call")
    proc.send_signal(signal.SIGINT)
    code, stderr = _finish(proc)
    assert code == 0 and "already in flight when Ctrl-C came" in stderr, stderr[-2000:]
    assert "rerun the same command" not in stderr
    assert sorted(t["metadata"]["question_id"] for t in _lines(out)) == ["q0", "q1"]


def test_eval_ctrl_c_saves_the_batch_in_flight(tmp_path):
    out = tmp_path / "run"
    proc = _start(tmp_path, EVAL.format(questions=QUESTIONS), out, 1.5)
    seen = _wait_for_lines(proc, out / "results.jsonl", 2)  # the first batch of 2
    # Ctrl-C once the second batch is in flight (not between the two, on a busy host)
    _wait_for_file(proc, Path(str(out) + ".started-q2"), "the second batch")
    proc.send_signal(signal.SIGINT)
    code, stderr = _finish(proc)
    assert code != 0 and "finishing the questions in flight" in stderr
    results = _lines(out / "results.jsonl")
    assert seen == 2 and len(results) == 4, "the second batch (in flight) is saved, the third never starts"
    assert all(r["score"]["correct"] for r in results)
    assert not (out / "summary.json").exists(), "no summary for a stopped run"
