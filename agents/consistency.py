"""The select step: execute candidate actions and keep the majority outcome.

With k = 1 the one action runs in the session itself. With k > 1 each parseable
candidate runs in its own fork of the session, in parallel; candidates that
raise (or time out) are filtered out; the rest are grouped by outcome (the
final-answer value when final_answer was called, else printed output + last
value); the largest group wins, ties to the earliest candidate. The winning
fork becomes the session and the others are discarded: nothing runs twice,
and losing candidates leave no trace in the session.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tinyact.agents.parsing import parse_action
from tinyact.schema import Candidate, Completion, ExecResult

__all__ = ["SelectOutcome", "outcome_key", "select_candidates"]


@dataclass
class SelectOutcome:
    session: Any
    """The session to continue with (the winner's fork when k > 1)."""
    chosen: int
    candidates: list[Candidate]
    result: ExecResult | None
    seconds: float


def _normalize_answer(value: Any) -> str:
    if isinstance(value, str):
        text = " ".join(value.strip().split()).lower()
        digits = text.replace(",", "")
        try:  # "42" and 42 agree, exactly however many digits
            return json.dumps(int(digits))
        except ValueError:
            pass
        try:  # as do "42.0" and 42
            number = float(digits)
        except ValueError:
            return json.dumps(text)
        return json.dumps(int(number) if number.is_integer() else number)
    if isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return json.dumps(value)  # never through float: 2**70 and 2**70 + 1 must differ
    if isinstance(value, float):
        return json.dumps(int(value) if value.is_integer() else value)
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def outcome_key(result: ExecResult) -> str | None:
    """The vote key of an execution; None when it failed (filtered out)."""
    if result.error is not None:
        return None
    if result.called_final_answer:
        return "final_answer:" + _normalize_answer(result.final_answer)
    return "output:" + json.dumps([result.stdout.strip(), result.value])


def _record(index: int, completion: Completion, result: ExecResult | None, seconds: float) -> Candidate:
    action = parse_action(completion.text)
    return Candidate(
        index=index,
        text=completion.text,
        action=action,
        result=result,
        outcome_key=outcome_key(result) if result is not None else None,
        completion_tokens=completion.completion_tokens,
        seconds=seconds,
    )


def select_candidates(
    session: Any, completions: Sequence[Completion], *, timeout: float, parallel: int = 8
) -> SelectOutcome:
    started = time.perf_counter()
    if len(completions) == 1:
        action = parse_action(completions[0].text)
        result = session.execute(action.code, timeout=timeout) if action.ok else None
        candidate = _record(0, completions[0], result, time.perf_counter() - started)
        candidate.chosen = True
        candidate.group_size = 1 if candidate.outcome_key else 0
        return SelectOutcome(session, 0, [candidate], result, time.perf_counter() - started)

    actions = [parse_action(c.text) for c in completions]
    runnable = [i for i, a in enumerate(actions) if a.ok]
    # One request for all forks (fork_many) where the backend offers it.
    made = session.fork_many(len(runnable)) if hasattr(session, "fork_many") and runnable else [
        session.fork() for _ in runnable
    ]
    forks = dict(zip(runnable, made))

    def run(i: int) -> tuple[int, ExecResult, float]:
        t = time.perf_counter()
        return i, forks[i].execute(actions[i].code, timeout=timeout), time.perf_counter() - t

    results: dict[int, tuple[ExecResult, float]] = {}
    if runnable:
        with ThreadPoolExecutor(max_workers=min(parallel, len(runnable))) as pool:
            for i, result, secs in pool.map(run, runnable):
                results[i] = (result, secs)
    candidates = [
        _record(i, c, *(results[i] if i in results else (None, 0.0))) for i, c in enumerate(completions)
    ]
    groups: dict[str, list[int]] = {}
    for cand in candidates:
        if cand.outcome_key is not None:
            groups.setdefault(cand.outcome_key, []).append(cand.index)
    for cand in candidates:
        cand.group_size = len(groups.get(cand.outcome_key, [])) if cand.outcome_key else 0
    if groups:
        # Largest group; ties go to the group whose first member came first.
        best = max(groups.values(), key=lambda members: (len(members), -members[0]))
        chosen = best[0]
    else:
        chosen = 0  # none valid: keep the first candidate and observe its error (as the paper does)
    candidates[chosen].chosen = True
    new_session = session
    if chosen in forks:
        session.adopt(forks[chosen])
        new_session = session
    for i, fork in forks.items():
        if i != chosen:
            fork.close()
    result = results[chosen][0] if chosen in results else None
    return SelectOutcome(new_session, chosen, candidates, result, time.perf_counter() - started)
