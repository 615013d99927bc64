"""The chain-of-thought baseline: one batched engine call per batch of questions, k samples voted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from tinyact.eval.math_equiv import extract_math_answer, last_boxed, normalize_math
from tinyact.eval.metrics import extract_qa_answer, normalize_answer
from tinyact.eval.prompts import COT_PROMPT_VERSION, RAG_PROMPT_VERSION, cot_messages
from tinyact.eval.runner import Prediction
from tinyact.schema import SamplingParams

if TYPE_CHECKING:
    from tinyact.eval.datasets import Question
    from tinyact.models.engines.base import Engine

__all__ = ["CoTSolver", "extract_answer", "majority_answer", "retrieve_passages"]


def extract_answer(text: str, kind: Literal["qa", "math"]) -> str | None:
    """The final answer of a CoT response: QA's ``<answer>`` tag (else its last non-empty line),
    math's ``\\boxed{}`` (else a trailing number)."""
    if kind == "qa":
        answer = extract_qa_answer(text)
        if answer is None:  # fall back to the last non-empty line
            lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
            answer = lines[-1] if lines else None
        return answer
    return extract_math_answer(text)


def retrieve_passages(retriever: Any, questions: Sequence[str], k: int) -> list[list[dict[str, str]]]:
    """The top ``k`` passages for each question (the question is the query), as ``{"id", "title", "text"}``.

    ``retriever``: an index (``open_index``), a ``RemoteRetriever``, or anything with
    ``search(query, k)``; ``batch_search`` is used where it exists (one embedding batch).
    """
    if not questions:
        return []
    return [[{"id": str(h.id), "title": h.title, "text": h.text} for h in row] for row in _search(retriever, questions, k)]


def _search(retriever: Any, queries: Sequence[str], k: int) -> list[Any]:
    batch = getattr(retriever, "batch_search", None)
    return batch(list(queries), k) if batch is not None else [retriever.search(q, k) for q in queries]


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


class _Lazy:
    """A retriever opened from its ``--index`` value on the first search."""

    def __init__(self, index: str) -> None:
        self.index, self._retriever = index, None

    def batch_search(self, queries: Sequence[str], k: int) -> list[Any]:
        if self._retriever is None:
            from tinyact.tools.retrieval.cli import open_retriever

            self._retriever = open_retriever(self.index)
        return _search(self._retriever, queries, k)


class CoTSolver:
    """Answers questions with the teacher CoT prompt through any engine.

    A callable ``SolveBatch``: one ``engine.generate`` call per batch, with
    ``n=samples``; when ``samples > 1`` the extracted answers are majority-voted
    (self-consistency). With a ``retriever``, each QA question is asked with its
    top ``k`` retrieved passages (the question is the query), as the paper's CoT
    baselines on QA were; math questions never retrieve.

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
        retriever: Any = None,
        k: int = 5,
        index: str | None = None,
    ) -> None:
        """Create a solver.

        Args:
            engine: Any engine implementing the tinyact engine protocol.
            kind: ``"qa"`` or ``"math"`` (picks the prompt and the answer format).
            samples: k completions per question (k=1: greedy by default).
            sampling: Sampling settings; default greedy for k=1, temperature
                0.7 / top_p 0.95 for k>1, 1024 new tokens.
            model: The model name recorded in the run config.
            retriever: An index folder or URL (opened on first use), or an index,
                ``RemoteRetriever`` or anything with ``search(query, k)``; used for QA only.
            k: Passages per QA question.
            index: The index's folder or URL, recorded in the run config (default:
                ``retriever`` when it is one).
        """
        from tinyact.errors import ConfigError

        if samples < 1:
            raise ConfigError(f"samples must be >= 1, got {samples}")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
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
        if isinstance(retriever, str):  # an index folder or URL, opened on first use (a Ray worker opens its own)
            index, retriever = index or retriever, _Lazy(retriever)
        self.retriever = retriever if kind == "qa" else None
        self.k = k
        self.index = index
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
            **self.rag_config,
        }

    @property
    def rag_config(self) -> dict[str, object]:
        """``index``, ``rag_k`` and ``rag_prompt`` (all None without retrieval): part of a run folder's identity."""
        rag = self.retriever is not None
        return {"index": self.index if rag else None, "rag_k": self.k if rag else None,
                "rag_prompt": RAG_PROMPT_VERSION if rag else None}

    def messages(self, questions: Sequence[Question]) -> list[list[Any]]:
        """The conversations sent for ``questions`` (passages retrieved first when RAG is on)."""
        texts = [q.question for q in questions]
        passages: list[Any] = (retrieve_passages(self.retriever, texts, self.k) if self.retriever is not None
                               else [None] * len(texts))
        return [cot_messages(t, self.kind, p) for t, p in zip(texts, passages)]

    def _extract(self, text: str) -> str | None:
        return extract_answer(text, self.kind)

    def __call__(self, questions: Sequence[Question]) -> list[Prediction]:
        """Answer a batch of questions with one engine call."""
        if not questions:
            return []
        started = time.perf_counter()
        conversations = self.messages(questions)
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
