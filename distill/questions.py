"""Questions for distillation (code tasks, benchmarks, JSONL files) and how each is graded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinyact.distill.config import TaskSource
from tinyact.eval.datasets import Question

__all__ = ["grade", "load_tasks"]


def load_tasks(sources: Sequence[TaskSource]) -> list[Question]:
    """All questions of the sources, in order; ids are made unique per source.

    Each question's ``metadata["grader"]`` says how it is graded ("code",
    "qa", "math" or "math-numeric") and ``metadata["source"]`` where it came from.
    """
    out: list[Question] = []
    seen: set[str] = set()
    for src in sources:
        for q in _load_one(src):
            if q.id in seen:
                raise ValueError(f"duplicate question id {q.id!r}: give the sources different seeds or files")
            seen.add(q.id)
            out.append(q)
    return out


def _load_one(src: TaskSource) -> list[Question]:
    if src.source == "code_tasks":
        from tinyact.eval.code_tasks import make_code_tasks

        assert src.n is not None
        return [
            Question(f"code-s{src.seed}-{t.id}", t.question, t.answer,
                     {"grader": "code", "source": f"code_tasks:{src.seed}", "kind": t.kind})
            for t in make_code_tasks(src.n, seed=src.seed)
        ]
    if src.source == "benchmark":
        from tinyact.eval.datasets import load_benchmark

        bench = load_benchmark(src.name, src.split, limit=src.n)
        grader = "qa" if bench.kind == "qa" else ("math-numeric" if bench.numeric else "math")
        return [
            Question(f"{bench.name}-{bench.split}-{q.id}", q.question, q.answer,
                     {**q.metadata, "grader": grader, "source": f"{bench.name}:{bench.split}"})
            for q in bench.questions
        ]
    rows = [json.loads(line) for line in Path(src.path).read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: src.n] if src.n else rows
    return [
        Question(str(r.get("id", i)), r["question"], r["answer"], {"grader": src.grader, "source": src.path})
        for i, r in enumerate(rows)
    ]


def grade(prediction: Any, gold: Any, grader: str) -> bool:
    """Is ``prediction`` correct? Uses the evaluation checkers (exact match for QA and code, math equivalence)."""
    if prediction is None:
        return False
    if grader == "code":
        from tinyact.eval.code_tasks import check_code_answer

        return check_code_answer(prediction, gold)
    if grader == "qa":
        from tinyact.eval.metrics import check_qa

        return check_qa(str(prediction), gold).correct
    if grader in ("math", "math-numeric"):
        from tinyact.eval.metrics import check_math

        return check_math(str(prediction), gold, numeric=grader == "math-numeric").correct
    raise ValueError(f"unknown grader {grader!r} (code, qa, math, math-numeric)")
