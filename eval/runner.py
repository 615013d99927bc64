"""The resumable evaluation loop: batches of questions -> predictions -> graded JSONL lines."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinyact import jsonl
from tinyact.errors import ConfigError
from tinyact.eval.metrics import Score

if TYPE_CHECKING:
    from tinyact.schema import Trajectory
    from tinyact.eval.datasets import Benchmark, Question
    from tinyact.eval.judge import LLMJudge

__all__ = [
    "Prediction",
    "Result",
    "RunSummary",
    "SolveBatch",
    "load_results",
    "prediction_from_trajectory",
    "run_eval",
    "summarize",
]

RESULTS = "results.jsonl"
TRAJECTORIES = "trajectories.jsonl"
"""The agent method's trajectories, one per answer (``Prediction.trajectory_id``), beside the results."""
CONFIG = "config.json"
SUMMARY = "summary.json"

# config keys that must match when a run folder is resumed
_IDENTITY = ("benchmark", "split", "method", "model", "samples", "prompt_version", "repeat_notes", "index", "rag_k",
             "rag_prompt")
_DEFAULTS = {"repeat_notes": True}  # for run folders written before the key existed (the others: None)


class Prediction(BaseModel):
    """What a solver produced for one question."""

    model_config = ConfigDict(extra="forbid")

    text: str | None
    """The final answer that is graded (None: the solver produced none)."""
    raw: str = ""
    """The full model output (CoT response, or the agent's last step)."""
    steps: int = 1
    prompt_tokens: int = 0
    tokens: int = 0
    """Completion tokens spent on this question, all samples and steps included."""
    seconds: float = 0.0
    format_error: bool = False
    """The output did not follow the required format (no tag / box / final_answer)."""
    trajectory_id: str | None = None
    candidates: list[str | None] = Field(default_factory=list)
    """Answers of the k samples, when several were drawn."""
    end_reason: str | None = None
    """For agent runs: why the run ended (``final_answer``, ``max_steps``, ...)."""


class Result(BaseModel):
    """One line of ``results.jsonl``."""

    model_config = ConfigDict(extra="forbid")

    id: str
    question: str
    gold: Any
    prediction: Prediction
    score: Score
    finished_at: float = Field(default_factory=time.time)
    batch_started_at: float | None = None
    """When the batch holding this question started (its wall-clock span is batch start to finish)."""


class RunSummary(BaseModel):
    """``summary.json``: the run's settings and its aggregate numbers."""

    model_config = ConfigDict(extra="allow")

    benchmark: str
    split: str
    method: str
    model: str = ""
    samples: int = 1
    prompt_version: str = ""
    metric: str
    n: int
    n_expected: int | None = None
    accuracy: float
    mean_f1: float | None = None
    mean_steps: float
    mean_tokens: float
    seconds_per_question: float
    """Mean time of one question (overlapping ones each count in full with --parallel)."""
    wall_seconds: float = 0.0
    """Time the run was busy: the union of the questions' [start, finish] spans (resumed runs' gaps excluded)."""
    format_error_rate: float


SolveBatch = Callable[[Sequence["Question"]], Sequence[Prediction]]
"""The seam between the runner and a method: a batch of questions in, one prediction each out."""


def prediction_from_trajectory(trajectory: Trajectory) -> Prediction:
    """Turn an agent run into the runner's Prediction (the agent method's adapter).

    The graded text is the value passed to ``final_answer`` (``str()`` of it;
    None when it was never called). ``format_error`` is set when a step's
    output did not parse into a code action.
    """
    answer = trajectory.final_answer
    return Prediction(
        text=None if answer is None else str(answer),
        raw=trajectory.steps[-1].model_output if trajectory.steps else "",
        steps=len(trajectory.steps),
        prompt_tokens=trajectory.usage.prompt_tokens,
        tokens=trajectory.usage.completion_tokens,
        seconds=trajectory.seconds,
        format_error=any(step.action.parse_error is not None for step in trajectory.steps),
        trajectory_id=trajectory.id,
        end_reason=trajectory.end_reason,
    )


def load_results(out_dir: str | os.PathLike[str], *, repair: bool = False) -> list[Result]:
    """Read ``results.jsonl``, skipping lines that do not parse (a crash mid-write).

    Args:
        out_dir: The run folder.
        repair: Rewrite the file without the bad lines (and without duplicate ids),
            so appending can continue from a clean end.

    Returns:
        The results, first occurrence of each id, in file order.
    """
    path = Path(out_dir) / RESULTS
    if not path.exists():
        return []
    results: list[Result] = []
    seen: set[str] = set()
    good_lines: list[str] = []
    # a last line without its newline: rewritten whole if it parses (JsonlWriter would cut it)
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(size - 1, 0))
        dirty = size > 0 and f.read(1) != b"\n"
    for line in jsonl.read_lines(path):
        try:
            r = Result.model_validate_json(line)
        except (ValidationError, ValueError):
            dirty = True
            continue
        if r.id in seen:
            dirty = True
            continue
        seen.add(r.id)
        results.append(r)
        good_lines.append(line)
    if repair and dirty:
        jsonl.rewrite(path, good_lines)
    return results


def _busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] spans."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _wall_seconds(results: Sequence[Result], *, amortized: bool) -> float:
    """Time the run was busy. Results that record their batch's start span it; older ones do not.
    For those, a question's own seconds give its span, unless `amortized` (a batched method such
    as CoT, whose seconds are a share of a batch run one after another): then their sum counts."""
    spans, shares = [], 0.0
    for r in results:
        if r.batch_started_at is not None:
            spans.append((r.batch_started_at, r.finished_at))
        elif amortized:
            shares += r.prediction.seconds
        else:
            spans.append((r.finished_at - r.prediction.seconds, r.finished_at))
    return _busy_seconds(spans) + shares


def summarize(results: Sequence[Result], config: dict[str, Any]) -> RunSummary:
    """Aggregate results into a summary (accuracy, mean steps/tokens, seconds, format errors)."""
    n = len(results)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    f1s = [r.score.details["f1"] for r in results if "f1" in r.score.details]
    return RunSummary(
        benchmark=config.get("benchmark", ""),
        split=config.get("split", ""),
        method=config.get("method", ""),
        model=config.get("model", ""),
        samples=int(config.get("samples", 1)),
        prompt_version=config.get("prompt_version", ""),
        metric=config.get("metric", ""),
        n=n,
        n_expected=config.get("n_expected"),
        accuracy=mean([float(r.score.correct) for r in results]),
        mean_f1=mean(f1s) if f1s else None,
        mean_steps=mean([r.prediction.steps for r in results]),
        mean_tokens=mean([r.prediction.tokens for r in results]),
        seconds_per_question=mean([r.prediction.seconds for r in results]),
        wall_seconds=_wall_seconds(results, amortized=config.get("method") == "cot"),
        format_error_rate=mean([float(r.prediction.format_error) for r in results]),
    )


def _write_json(path: Path, data: Any) -> None:
    jsonl.write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def _check_config(path: Path, config: dict[str, Any]) -> None:
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    was = {k: old.get(k, _DEFAULTS.get(k)) for k in _IDENTITY}
    now = {k: config.get(k, _DEFAULTS.get(k)) for k in _IDENTITY}
    diff = {k: (was[k], now[k]) for k in _IDENTITY if was[k] != now[k]}
    if diff:
        pairs = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{path.parent} holds a different run ({pairs}); use another --out folder to start a new run"
        )


def run_eval(
    benchmark: Benchmark,
    solve_batch: SolveBatch,
    out_dir: str | os.PathLike[str],
    limit: int | None = None,
    batch_size: int = 8,
    method: Literal["cot", "agent"] | str = "cot",
    config: dict[str, Any] | None = None,
    *,
    judge: LLMJudge | None = None,
    progress: bool = True,
) -> RunSummary:
    """Evaluate a solver on a benchmark, resumably.

    Each graded question is appended to ``out_dir/results.jsonl`` as one line
    (flushed and fsynced). On a restart, ids already there are skipped and a
    half-written line from a crash is dropped. ``config.json`` records the
    settings; ``summary.json`` is written at the end. Ctrl-C (SIGINT) finishes
    and saves the batch in flight, then raises ``KeyboardInterrupt`` (twice: at once).

    Args:
        benchmark: The questions and their checker.
        solve_batch: Questions in, one ``Prediction`` each out (same order).
        out_dir: The run folder (created if needed).
        limit: Evaluate only the first ``limit`` questions.
        batch_size: Questions per ``solve_batch`` call.
        method: ``"cot"`` or ``"agent"`` (recorded in the config).
        config: More settings to record (``model``, ``samples``,
            ``prompt_version``, ...); ``benchmark``, ``split``, ``method`` and
            ``metric`` are filled in.
        judge: Grade with this LLM judge instead of exact match (QA only).
        progress: Show a rich progress bar with an ETA.

    Returns:
        The summary over every result in the folder.

    Raises:
        ConfigError: ``out_dir`` holds a run with other settings, bad
            ``batch_size``, or the solver returned the wrong number of predictions.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    questions = benchmark.questions[:limit] if limit is not None else list(benchmark.questions)
    use_judge = judge is not None and benchmark.kind == "qa"
    cfg: dict[str, Any] = {
        "model": "",
        "samples": 1,
        "prompt_version": "",
        **(config or {}),
        "benchmark": benchmark.name,
        "split": benchmark.split,
        "kind": benchmark.kind,
        "method": method,
        "metric": "llm_judge" if use_judge else benchmark.metric,
        "n_expected": len(questions),
    }
    if use_judge:
        cfg["judge_model"] = judge.model  # type: ignore[union-attr]
    _check_config(out / CONFIG, cfg)
    _write_json(out / CONFIG, cfg)

    done = {r.id for r in load_results(out, repair=True)}
    todo = [q for q in questions if q.id not in done]
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]

    from tinyact.console import drain_on_interrupt, tally

    with drain_on_interrupt("questions") as stopping, tally(
            benchmark.name, len(questions), done=len(questions) - len(todo), score="acc", enabled=progress) as advance:
        with jsonl.JsonlWriter(out / RESULTS) as results:
            answered = 0
            for batch, (preds, batch_started_at, seconds) in zip(batches, _solved(solve_batch, batches, stopping)):
                answered += 1
                if len(preds) != len(batch):
                    raise ConfigError(f"solve_batch returned {len(preds)} predictions for {len(batch)} questions")
                per_question = seconds / len(batch)
                for q, p in zip(batch, preds, strict=True):
                    if not p.seconds:
                        p = p.model_copy(update={"seconds": per_question})
                    if use_judge:
                        score = judge.check(q.question, p.text, q.answer)  # type: ignore[union-attr]
                    else:
                        score = benchmark.check(p.text, q.answer)
                    result = Result(id=q.id, question=q.question, gold=q.answer, prediction=p, score=score,
                                    batch_started_at=batch_started_at)
                    results.write(result)
                    advance(score.correct)
            if answered < len(batches) and not stopping():  # zip stops at the shorter: a solver that lost batches
                raise ConfigError(f"the solver answered {answered} of {len(batches)} batches")

    summary = summarize(load_results(out), cfg)
    _write_json(out / SUMMARY, summary.model_dump())
    return summary


def _solved(solve_batch: SolveBatch, batches: list[list[Question]],
            stopping: Callable[[], bool] = lambda: False) -> Iterator[tuple[list[Prediction], float, float]]:
    """(predictions, start time, seconds) per batch, in order: one call after another (none after
    ``stopping()``: Ctrl-C), or all at once on a solver that spreads them (``map_batches``:
    ``RaySolve`` on a Ray cluster)."""
    spread = getattr(solve_batch, "map_batches", None)
    if spread is not None:
        yield from spread(batches)
        return
    for batch in batches:
        if stopping():
            return
        started, started_at = time.perf_counter(), time.time()
        preds = list(solve_batch(batch))
        yield preds, started_at, time.perf_counter() - started
