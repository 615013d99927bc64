"""What the agent and self-consistency benchmarks share: an agent solving the seeded
code tasks one by one, each timed and graded, behind a progress bar with an ETA."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.progress import Progress

from tinyact.eval.code_tasks import CodeTask, check_code_answer


@dataclass(frozen=True)
class TaskRun:
    """One task's outcome."""

    correct: bool
    seconds: float
    steps: int
    format_errors: int
    """Steps whose output had no runnable code (nothing executed, nothing to approve)."""
    out_of_time: bool
    answer: Any = None
    final_code: str = ""
    """The last step's code (shows whether the answer was a variable or a retyped literal)."""


def solve(agent, tasks: Sequence[CodeTask], progress: Progress, label: str) -> list[TaskRun]:
    """Run `agent` on each task in turn; one row labelled `label` on `progress` (``tinyact.console.progress_bar``)."""
    row = progress.add_task(label, total=len(tasks))
    runs = []
    for task in tasks:
        started = time.perf_counter()
        result = agent.run(task.question)
        runs.append(TaskRun(
            correct=check_code_answer(result.answer, task.answer),
            seconds=time.perf_counter() - started,
            steps=len(result.steps),
            format_errors=sum(1 for s in result.steps if s.result is None and s.approval is None),
            out_of_time=result.trajectory.end_reason == "time_budget",
            answer=result.answer,
            final_code=result.steps[-1].action.code if result.steps and result.steps[-1].action else "",
        ))  # fmt: skip
        progress.advance(row)
    return runs


def summarize(runs: Sequence[TaskRun]) -> dict:
    """Accuracy, mean steps, format-error rate (per step), medians of seconds per task and per step."""
    if not runs:
        raise ValueError("no task was run")
    steps = sum(r.steps for r in runs)
    return {
        "tasks": len(runs),
        "accuracy": sum(r.correct for r in runs) / len(runs),
        "mean_steps": steps / len(runs),
        "format_error_rate": sum(r.format_errors for r in runs) / max(steps, 1),
        "s_per_task": statistics.median(r.seconds for r in runs),
        "s_per_step": statistics.median(r.seconds / max(1, r.steps) for r in runs),
        "out_of_time": sum(r.out_of_time for r in runs),
    }
