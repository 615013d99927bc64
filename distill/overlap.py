"""Train/test overlap: no training question may be a held-out test question.

Questions match when their text is equal after lowercasing and dropping
punctuation and spacing ("Who directed Jaws?" = "who directed jaws"). The
paper's training sets (HotpotQA train 1,000, MATH L4-5 and L2-3) share no
question with any test set here; HotpotQA-distractor's train and dev splits
(drawn from HotpotQA's dev split) do share 21 and 26 questions with the
paper's HotpotQA test set, so they must not train a model evaluated on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tinyact.errors import ConfigError

__all__ = ["OverlapReport", "check_overlap", "find_overlap", "normalize_question", "held_out_sets"]


def normalize_question(text: str) -> str:
    """Lowercase words and numbers only, single-spaced."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(text).lower()).split())


def find_overlap(train: Sequence[Any], test: Sequence[Any]) -> list[tuple[str, str]]:
    """``(train id, test id)`` for every training question whose text is a test question's."""
    index: dict[str, str] = {}
    for q in test:
        index.setdefault(normalize_question(q.question), q.id)
    return [(q.id, index[k]) for q in train if (k := normalize_question(q.question)) in index]


def held_out_sets(names: Iterable[str] | None = None, data_dir: Any = None) -> list[Any]:
    """The test split of each named benchmark (default: every benchmark that has one)."""
    from tinyact.eval.datasets import BENCHMARKS, load_benchmark

    names = list(names) if names is not None else [n for n, s in BENCHMARKS.items() if "test" in s.files]
    return [load_benchmark(n, "test", data_dir=data_dir) for n in names]


@dataclass
class OverlapReport:
    train_questions: int
    test_questions: dict[str, int]
    """Questions per test set checked, ``name:split`` -> count."""
    overlap: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """``name:split`` -> (train id, test id) pairs; empty when clean."""

    @property
    def clean(self) -> bool:
        return not any(self.overlap.values())

    def as_dict(self) -> dict[str, Any]:
        return {"train_questions": self.train_questions, "test_questions": self.test_questions,
                "overlapping": {k: len(v) for k, v in self.overlap.items() if v}, "clean": self.clean}


def check_overlap(train: Sequence[Any], tests: Sequence[Any], *, strict: bool = True) -> OverlapReport:
    """Compare training questions with test sets (``Benchmark`` objects).

    Raises:
        ConfigError: with ``strict``, when any training question is a test question
            (the message names the sets and the first pairs).
    """
    report = OverlapReport(len(train), {f"{b.name}:{b.split}": len(b.questions) for b in tests})
    for b in tests:
        pairs = find_overlap(train, b.questions)
        if pairs:
            report.overlap[f"{b.name}:{b.split}"] = pairs
    if strict and not report.clean:
        where = "; ".join(f"{k}: {len(v)} (e.g. train {v[0][0]} = test {v[0][1]})" for k, v in report.overlap.items())
        raise ConfigError(f"training questions overlap held-out test questions: {where}")
    return report
