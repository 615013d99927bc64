"""The loop the agent and self-consistency benchmarks share, fed scripted model outputs."""

from __future__ import annotations

import pytest
from rich.console import Console

from tinyact import Agent, ReplayEngine
from tinyact.bench.task_runs import TaskRun, solve, summarize
from tinyact.console import progress_bar
from tinyact.eval.code_tasks import make_code_tasks


def act(code: str) -> str:
    return f"Thought: compute it\nCode:\n```py\n{code}\n```"


def test_solve_grades_times_and_counts_format_errors():
    right, wrong = make_code_tasks(2, seed=3)
    engine = ReplayEngine([
        act(f"final_answer({right.answer!r})"),           # task 1: right in one step
        "Thought: I know it. The answer is 7.",           # task 2: no code (a format error) ...
        act("final_answer('certainly not the answer')"),  # ... then a wrong answer
    ])  # fmt: skip
    with progress_bar(console=Console(quiet=True)) as progress:
        runs = solve(Agent(engine, max_steps=4), [right, wrong], progress, "replay")
    engine.assert_consumed()
    assert [(r.correct, r.steps, r.format_errors, r.out_of_time) for r in runs] == [
        (True, 1, 0, False), (False, 2, 1, False),
    ]  # fmt: skip
    assert all(r.seconds > 0 for r in runs)
    assert runs[0].answer == right.answer and runs[0].final_code == f"final_answer({right.answer!r})"
    assert runs[1].answer == "certainly not the answer"
    assert progress.tasks[0].completed == 2


def test_summarize():
    runs = [TaskRun(True, 2.0, 1, 0, False), TaskRun(False, 9.0, 3, 1, True), TaskRun(True, 4.0, 2, 0, False)]
    row = summarize(runs)
    assert row["tasks"] == 3 and row["accuracy"] == pytest.approx(2 / 3)
    assert row["mean_steps"] == 2.0 and row["format_error_rate"] == pytest.approx(1 / 6)
    assert row["s_per_task"] == 4.0 and row["s_per_step"] == 2.0  # medians of 2, 9, 4 and of 2, 3, 2
    assert row["out_of_time"] == 1
    with pytest.raises(ValueError, match="no task"):
        summarize([])
