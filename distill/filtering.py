"""Grading and filtering of teacher trajectories, with a count per reason."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyact import jsonl
from tinyact.distill.questions import grade
from tinyact.schema import Trajectory

__all__ = ["FilterReport", "filter_file", "filter_trajectories", "is_correct", "reject_reason"]

REASONS = ("out_of_steps", "ended_early", "parse_error", "wrong_answer", "execution_error")


def _execution_errors(t: Trajectory) -> int:
    return sum(1 for s in t.steps if s.result is not None and s.result.error is not None)


def is_correct(t: Trajectory) -> bool:
    """The teacher's answer is right: the grade recorded at collection, else graded now (no answer: wrong)."""
    correct = t.metadata.get("correct")
    if correct is None and "gold" in t.metadata:
        correct = grade(t.final_answer, t.metadata["gold"], t.metadata.get("grader", "qa"))
    return bool(correct)


def reject_reason(t: Trajectory, *, keep_recovered_errors: bool = True) -> str | None:
    """Why ``t`` is not training data, or None to keep it.

    In order: ``out_of_steps`` (the step budget ran out), ``ended_early`` (a
    time/token budget, cancellation or an infrastructure error ended it),
    ``parse_error`` (a step's output had no runnable code), ``wrong_answer``
    (graded with the evaluation checkers; no answer counts as wrong),
    ``execution_error`` (code raised; only with ``keep_recovered_errors=False``,
    since a correct run recovered from it, which the paper keeps for reflection).
    """
    if t.end_reason == "max_steps":
        return "out_of_steps"
    if t.end_reason != "final_answer":
        return "ended_early"
    if any(s.action.parse_error is not None for s in t.steps):
        return "parse_error"
    if not is_correct(t):
        return "wrong_answer"
    if not keep_recovered_errors and _execution_errors(t):
        return "execution_error"
    return None


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    kept_with_recovered_errors: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def filter_trajectories(
    trajectories: Iterable[Trajectory], *, keep_recovered_errors: bool = True
) -> tuple[list[Trajectory], FilterReport]:
    """Keep correct, parseable runs that ended by ``final_answer``; one per question (the first)."""
    report = FilterReport()
    kept: list[Trajectory] = []
    seen: set[str] = set()
    for t in trajectories:
        qid = t.metadata.get("question_id", t.id)
        if qid in seen:
            report.duplicates += 1
            continue
        seen.add(qid)
        report.total += 1
        reason = reject_reason(t, keep_recovered_errors=keep_recovered_errors)
        if reason is not None:
            report.rejected[reason] = report.rejected.get(reason, 0) + 1
            continue
        report.kept += 1
        report.kept_with_recovered_errors += int(_execution_errors(t) > 0)
        kept.append(t)
    return kept, report


def filter_file(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    report_path: str | os.PathLike[str] | None = None,
    keep_recovered_errors: bool = True,
) -> FilterReport:
    """Filter a trajectories JSONL into ``out_path`` (rewritten atomically) and write the report JSON."""
    from tinyact.distill.collect import read_trajectories

    kept, report = filter_trajectories(read_trajectories(in_path), keep_recovered_errors=keep_recovered_errors)
    jsonl.rewrite(out_path, (t.to_jsonl() for t in kept))
    if report_path is not None:
        Path(report_path).write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report
