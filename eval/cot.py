"""The chain-of-thought baseline: one batched engine call per batch of questions, k samples voted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from tinyact.eval.math_equiv import extract_math_answer, last_boxed, normalize_math
from tinyact.eval.metrics import extract_qa_answer, normalize_answer
from tinyact.eval.prompts import COT_PROMPT_VERSION, cot_messages
from tinyact.eval.runner import Prediction
from tinyact.schema import SamplingParams

if TYPE_CHECKING:
    from tinyact.eval.datasets import Question
    from tinyact.models.engines.base import Engine

__all__ = ["CoTSolver", "majority_answer"]


def majority_answer(answers: Sequence[str | None], kind: Literal["qa", "math"]) -> tuple[str | None, int]:
    """The most frequent answer (after normalization; ties: earliest) and its index.

    None answers do not vote; all None gives ``(None, 0)``.
    """
    norm = normalize_answer if kind == "qa" else normalize_math
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, a in enumerate(answers):
        if a is None:
            continue
        key = norm(a)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return None, 0
    best = max(counts, key=lambda k: (counts[k], -first[k]))
    return answers[first[best]], first[best]


def _follows_format(text: str, kind: str) -> bool:
    if kind == "qa":
        return "<answer>" in text.lower()
    return last_boxed(text) is not None


class CoTSolver:
    """Answers questions with the teacher CoT prompt through any engine.

    A callable ``SolveBatch``: one ``engine.generate`` call per batch, with
    ``n=samples``; when ``samples > 1`` the extracted answers are majority-voted
    (self-consistency).

    Example:
        >>> solver = CoTSolver(engine, "math", samples=1)  # doctest: +SKIP
        >>> run_eval(bench, solver, "runs/gsm-cot", config=solver.config)  # doctest: +SKIP
    """

    def __init__(
        self,
        engine: Engine,
        kind: Literal["qa", "math"],
        *,
        samples: int = 1,
        sampling: SamplingParams | None = None,
        model: str = "",
    ) -> None:
        """Create a solver.

        Args:
            engine: Any engine implementing the tinyact engine protocol.
            kind: ``"qa"`` or ``"math"`` (picks the prompt and the answer format).
            samples: k completions per question (k=1: greedy by default).
            sampling: Sampling settings; default greedy for k=1, temperature
                0.7 / top_p 0.95 for k>1, 1024 new tokens.
            model: The model name recorded in the run config.
        """
        if samples < 1:
            from tinyact.errors import ConfigError

            raise ConfigError(f"samples must be >= 1, got {samples}")
        self.engine = engine
        self.kind = kind
        self.samples = samples
        if sampling is None:
            sampling = (
                SamplingParams(temperature=0.0, max_tokens=1024)
                if samples == 1
                else SamplingParams(temperature=0.7, top_p=0.95, max_tokens=1024)
            )
        self.sampling = sampling
        self.model = model or getattr(engine, "name", "")
        # QA stops at the closing tag: nothing useful comes after it
        self.stop = ["</answer>"] if kind == "qa" else []

    @property
    def config(self) -> dict[str, object]:
        """Settings to record in the run's config.json."""
        return {
            "model": self.model,
            "samples": self.samples,
            "prompt_version": COT_PROMPT_VERSION,
            "sampling": self.sampling.model_dump(),
        }

    def _extract(self, text: str) -> str | None:
        if self.kind == "qa":
            answer = extract_qa_answer(text)
            if answer is None:  # fall back to the last non-empty line
                lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
                answer = lines[-1] if lines else None
            return answer
        return extract_math_answer(text)

    def __call__(self, questions: Sequence[Question]) -> list[Prediction]:
        """Answer a batch of questions with one engine call."""
        if not questions:
            return []
        started = time.perf_counter()
        conversations = [cot_messages(q.question, self.kind) for q in questions]
        outputs = self.engine.generate(conversations, n=self.samples, sampling=self.sampling, stop=self.stop)
        seconds = (time.perf_counter() - started) / len(questions)
        preds: list[Prediction] = []
        for completions in outputs:
            texts = [c.text for c in completions]
            answers = [self._extract(t) for t in texts]
            answer, idx = majority_answer(answers, self.kind)
            preds.append(
                Prediction(
                    text=answer,
                    raw=texts[idx] if texts else "",
                    steps=1,
                    prompt_tokens=completions[0].prompt_tokens if completions else 0,
                    tokens=sum(c.completion_tokens for c in completions),
                    seconds=seconds,
                    format_error=not any(_follows_format(t, self.kind) for t in texts),
                    candidates=answers if self.samples > 1 else [],
                )
            )
        return preds
