"""Teacher trajectory collection: every question run by the teacher agent, batched, resumable."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyact.jsonl import JsonlWriter, iter_lines
from tinyact.distill.questions import grade

if TYPE_CHECKING:
    from tinyact.agents.agent import Agent
    from tinyact.eval.datasets import Question
    from tinyact.schema import Trajectory

__all__ = ["CollectSummary", "collect_trajectories", "done_question_ids", "read_trajectories", "set_aside_stale",
           "summarize_trajectories"]

log = logging.getLogger(__name__)


@dataclass
class CollectSummary:
    """What a collection file holds (all runs in it, not only this session's)."""

    questions: int
    done: int
    solved: int
    failed_runs: int = 0
    """Runs that raised (infrastructure, not the model) in this session; rerun to retry them."""
    mean_steps: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    """Wall-clock seconds of this session."""
    end_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.solved / self.done if self.done else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "accuracy": round(self.accuracy, 4)}


def done_question_ids(path: str | os.PathLike[str]) -> set[str]:
    """Question ids that already have a trajectory in ``path``."""
    return {r["metadata"]["question_id"] for r in iter_lines(path) if "question_id" in r.get("metadata", {})}


def set_aside_stale(path: str | os.PathLike[str], prefixes: Mapping[str, str]) -> int:
    """Move the trajectories whose recorded prefix is not their question's prefix in ``prefixes`` (made
    under an older prefix rule) from ``path`` to ``<path stem>.stale.jsonl`` beside it, so that a resumed
    collection runs those questions again; returns how many moved. The moved lines are appended and
    fsynced before ``path`` is rewritten (atomically), so a crash loses none."""
    from tinyact.jsonl import dumps, write_atomic

    path = Path(path)
    if not path.is_file():
        return 0
    keep, stale = [], []
    for r in iter_lines(path):
        qid = r.get("metadata", {}).get("question_id")
        (stale if qid is not None and r.get("prefix") != prefixes.get(qid) else keep).append(r)
    if stale:
        aside = path.with_name(path.stem + ".stale.jsonl")
        with JsonlWriter(aside) as w:
            for r in stale:
                w.write(r)
        write_atomic(path, "".join(dumps(r) + "\n" for r in keep))
        log.warning("%d trajectories in %s continued a prefix the question no longer has: moved to %s, "
                    "to be collected again", len(stale), path, aside)
    return len(stale)


def read_trajectories(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Every trajectory line that parses (torn or foreign lines skipped), in file order."""
    from tinyact.schema import Trajectory

    out = []
    for r in iter_lines(path):
        try:
            out.append(Trajectory.model_validate(r))
        except ValueError:
            continue
    return out


def summarize_trajectories(path: str | os.PathLike[str], questions: int | None = None) -> CollectSummary:
    """Counts over a trajectories file: done, solved, steps, tokens, end reasons."""
    trajs = read_trajectories(path)
    seen: dict[str, Trajectory] = {}
    for t in trajs:
        seen.setdefault(t.metadata.get("question_id", t.id), t)
    ts = list(seen.values())
    reasons: dict[str, int] = {}
    for t in ts:
        reasons[str(t.end_reason)] = reasons.get(str(t.end_reason), 0) + 1
    return CollectSummary(
        questions=questions if questions is not None else len(ts),
        done=len(ts),
        solved=sum(bool(t.metadata.get("correct")) for t in ts),
        mean_steps=round(sum(len(t.steps) for t in ts) / len(ts), 3) if ts else 0.0,
        prompt_tokens=sum(t.usage.prompt_tokens for t in ts),
        completion_tokens=sum(t.usage.completion_tokens for t in ts),
        end_reasons=reasons,
    )


def run_question(agent: Agent, q: Question, prefix: str | None) -> Trajectory:
    """One teacher run on ``q``, graded, its metadata filled in."""
    result = agent.run(q.question, prefix=prefix, thread_id=f"{q.id}-{uuid.uuid4().hex[:8]}")
    t = result.trajectory
    correct = grade(t.final_answer, q.answer, q.metadata.get("grader", "qa"))
    t.metadata.update(
        question_id=q.id, gold=q.answer, grader=q.metadata.get("grader", "qa"),
        source=q.metadata.get("source", ""), correct=correct, prefix_used=prefix is not None,
    )
    return t


class _CollectOnWorker:
    """A Ray worker's side: builds the teacher agent once, then runs one question per call."""

    def __init__(self, make_agent: Callable[[], Agent], prefixes: Mapping[str, str]) -> None:
        self.make_agent, self.prefixes = make_agent, dict(prefixes)

    def __call__(self) -> Callable[[Question], tuple[str | None, str]]:
        agent = self.make_agent()

        def run(q: Question) -> tuple[str | None, str]:
            try:
                return run_question(agent, q, self.prefixes.get(q.id)).to_jsonl(), ""
            except Exception as e:  # an infrastructure failure: reported, left undone
                return None, f"{type(e).__name__}: {e}"

        return run


def collect_trajectories(
    agent: Agent | Callable[[], Agent],
    questions: Sequence[Question],
    out_path: str | os.PathLike[str],
    *,
    prefixes: Mapping[str, str] | None = None,
    workers: int = 8,
    progress: bool | Callable[[int, int, int], None] = True,
    ray: str | None = None,
) -> CollectSummary:
    """Run the teacher agent on every question not yet in ``out_path`` and append its trajectory.

    ``workers`` questions run at once, each in its own sandbox session; give the
    agent a ``BatchingEngine`` so their model calls share engine calls (vLLM
    then batches many conversations per call). Each finished run is one
    fsynced line, graded, with ``metadata``: question_id, gold, grader,
    correct, prefix_used. A kill loses only the runs in flight; rerunning skips
    done ids and cuts a torn last line. Ctrl-C (SIGINT) lets the runs in flight
    finish and be saved, starts no new one, then raises ``KeyboardInterrupt``
    (twice: at once; see ``console.drain_on_interrupt``).

    With ``ray`` (a cluster address, see ``tinyact.eval.distributed``), the
    questions are spread over ``workers`` Ray actors instead of threads; each
    builds its own teacher agent from ``agent``, which is then a picklable
    zero-argument factory, and the trajectories stream back to ``out_path``.

    Args:
        agent: The teacher agent (its engine, tools, max_steps, prompt), or with
            ``ray`` a factory that builds it.
        questions: Training questions (``metadata["grader"]`` picks the checker).
        out_path: The trajectories JSONL.
        prefixes: ``{question id: prefix}``; the first step continues the prefix.
        workers: Questions in flight (with ``ray``: Ray actors).
        progress: Show a progress bar with ETA, or a callback ``(done, total, solved)``.

    Returns:
        The summary of everything in ``out_path``.
    """
    started = time.time()
    if prefixes is not None:  # a prefix changed since (e.g. a newer rule): its trajectory is run again
        set_aside_stale(out_path, prefixes)
    prefixes = prefixes or {}
    done = done_question_ids(out_path)
    todo = [q for q in questions if q.id not in done]
    total = len(questions)
    failed = 0
    from tinyact.console import tally

    bar = tally("collect", total, done=total - len(todo), score="solved", enabled=progress)
    if ray is not None:
        from tinyact.eval.distributed import ray_map

        with JsonlWriter(out_path) as w, bar as advance:
            for q, (line, error) in zip(todo, ray_map(_CollectOnWorker(agent, prefixes), todo, address=ray,  # type: ignore[arg-type]
                                                      workers=workers), strict=True):
                if line is None:
                    failed += 1
                    log.warning("question %s failed: %s", q.id, error)
                    continue
                w.write(line)
                advance(bool(json.loads(line)["metadata"]["correct"]))
        return _summary(out_path, total, failed, started)

    def run_one(q: Question) -> Trajectory:
        return run_question(agent, q, prefixes.get(q.id))  # type: ignore[arg-type]

    from tinyact.console import drain_on_interrupt

    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="collect")
    pending: dict[Future, Question] = {}
    queue, given_up = list(todo), False
    try:
        with drain_on_interrupt("questions") as stopping, JsonlWriter(out_path) as w, bar as advance:
            while (queue and not stopping()) or pending:
                while queue and len(pending) < workers and not stopping():
                    q = queue.pop(0)
                    pending[pool.submit(run_one, q)] = q
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    q = pending.pop(fut)
                    try:
                        t = fut.result()
                    except Exception as e:  # an infrastructure failure: log, leave undone, go on
                        failed += 1
                        log.warning("question %s failed: %s: %s", q.id, type(e).__name__, e)
                        continue
                    w.write(t.to_jsonl())
                    advance(bool(t.metadata["correct"]))
    except KeyboardInterrupt:
        given_up = bool(pending)  # a second Ctrl-C: do not wait for the runs in flight
        raise
    finally:
        pool.shutdown(wait=not given_up, cancel_futures=True)
    return _summary(out_path, total, failed, started)


def _summary(out_path: str | os.PathLike[str], total: int, failed: int, started: float) -> CollectSummary:
    summary = summarize_trajectories(out_path, total)
    summary.failed_runs = failed
    summary.seconds = round(time.time() - started, 1)
    return summary
