"""The select step: execute candidate actions and keep the majority outcome.

With k = 1 the one action runs in the session itself. With k > 1 each parseable
candidate runs in its own fork of the session, in parallel; candidates that
raise (or time out) are filtered out; the rest are grouped by outcome (the
final-answer value when final_answer was called, else printed output + last
value); the largest group wins, ties to the earliest candidate. The winning
fork becomes the session and the others are discarded: nothing runs twice,
and losing candidates leave no trace in the session.

Faults heal (with a ``rebuild`` callback): a sandbox that dies during the
action becomes the action's observation and the session is rebuilt from the
committed code; a candidate whose fork dies is invalid; a parent session that
died is rebuilt and the vote goes on with the candidates that finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tinyact.agents.parsing import parse_action
from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.schema import Candidate, Completion, ExecError, ExecResult

__all__ = ["SelectOutcome", "died_result", "outcome_key", "select_candidates"]


@dataclass
class SelectOutcome:
    session: Any
    """The session to continue with (the winner's fork when k > 1)."""
    chosen: int
    candidates: list[Candidate]
    result: ExecResult | None
    seconds: float
    rebuilt: bool = False
    """The sandbox died during the step and was rebuilt from the committed code."""


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


def died_result(error: SandboxError | str, replayed: int | None, after: ExecResult | None = None) -> ExecResult:
    """The observation of an action during (or right after) which the sandbox died.

    after: the action's own result when it answered and the sandbox died right after it.
    """
    cause = str(error).split("\n", 1)[0].removesuffix("; open a new session")
    rebuilt = (
        f"; the session was rebuilt by replaying the {replayed} earlier committed code action(s), so their "
        "variables are back but this action's effects are lost"
        if replayed is not None
        else "; this candidate was dropped"
    )
    if after is not None:
        message = f"the code ran, but the sandbox died right after it (did the code kill processes?){rebuilt}"
        error_out = None if after.called_final_answer else ExecError(type="SandboxDied", message=message)
        return after.model_copy(update={"error": error_out or after.error, "rolled_back": True})
    return ExecResult(
        error=ExecError(
            type="SandboxDied",
            message=f"the sandbox died while this code ran ({cause}; did the code kill its own or other "
            f"processes, or exhaust memory?){rebuilt}",
        ),
        rolled_back=True,
    )


def select_candidates(
    session: Any,
    completions: Sequence[Completion],
    *,
    timeout: float,
    parallel: int = 8,
    rebuild: Callable[[Sequence[str]], tuple[Any, int, bool]] | None = None,
) -> SelectOutcome:
    """Execute the candidates and keep the majority outcome.

    rebuild: ``rebuild(extra_code) -> (new session, actions replayed, extra kept)``
    heals a dead sandbox (the registry's committed code, then `extra_code`,
    which is dropped if replaying it kills the sandbox again). Without
    it a dead sandbox raises SandboxError. With it nothing the code does ends
    the run: a death during the action is its observation (``SandboxDied``), a
    candidate whose fork dies is invalid, and a dead parent session is rebuilt.
    """
    started = time.perf_counter()
    if len(completions) == 1:
        action = parse_action(completions[0].text)
        result, rebuilt = None, False
        if action.ok:
            try:
                result = session.execute(action.code, timeout=timeout)
            except SandboxError as e:
                if rebuild is None or e.code not in _DEAD:
                    raise
                session, replayed, _ = rebuild(())
                result, rebuilt = died_result(e, replayed), True
            else:
                if rebuild is not None and not _alive(session):  # it answered, then the sandbox died
                    session, replayed, _ = rebuild(())  # not replayed: it is what killed the sandbox
                    result, rebuilt = died_result("", replayed, after=result), True
        candidate = _record(0, completions[0], result, time.perf_counter() - started)
        candidate.chosen = True
        candidate.group_size = 1 if candidate.outcome_key else 0
        return SelectOutcome(session, 0, [candidate], result, time.perf_counter() - started, rebuilt)

    actions = [parse_action(c.text) for c in completions]
    runnable = [i for i, a in enumerate(actions) if a.ok]
    rebuilt = False
    made: list[Any] = []
    if runnable:
        try:
            made = _forks(session, len(runnable))
        except SandboxError as e:  # the session died before this step (or while forking)
            if rebuild is None or e.code not in _DEAD:
                raise
            session, _, _ = rebuild(())
            rebuilt = True
            made = _forks(session, len(runnable))
    forks = dict(zip(runnable, made))
    adopted = None
    try:

        def run(i: int) -> tuple[int, ExecResult, float]:
            t = time.perf_counter()
            try:
                result = forks[i].execute(actions[i].code, timeout=timeout)
            except SandboxError as e:
                if rebuild is None or e.code not in _DEAD:
                    raise
                result = died_result(e, None)
            return i, result, time.perf_counter() - t

        results: dict[int, tuple[ExecResult, float]] = {}
        if runnable:
            with ThreadPoolExecutor(max_workers=min(parallel, len(runnable))) as pool:
                for i, result, secs in pool.map(run, runnable):
                    results[i] = (result, secs)
        candidates = [
            _record(i, c, *(results[i] if i in results else (None, 0.0))) for i, c in enumerate(completions)
        ]
        chosen = _vote(candidates)
        if chosen in forks and candidates[chosen].outcome_key is not None:
            adopted = forks[chosen]
            session.adopt(adopted)  # works on a dead parent too: the state is the fork's
    finally:
        for fork in forks.values():
            if fork is not adopted:
                fork.close()
    result = results[chosen][0] if chosen in results else None
    if rebuild is not None and not _alive(session):
        # The state died after its candidate answered (a candidate killed every process
        # it could), or the parent died and no candidate was adopted: rebuild from the
        # committed code, then the winner's action (dropped if replaying it kills).
        extra = [actions[chosen].code] if adopted is not None else []
        session, replayed, kept = rebuild(extra)
        rebuilt = True
        if extra and not kept and result is not None:
            result = died_result("", replayed, after=result)
            candidates[chosen].result = result
    return SelectOutcome(session, chosen, candidates, result, time.perf_counter() - started, rebuilt)


_DEAD = (SandboxErrorCode.WORKER_DIED, SandboxErrorCode.CLOSED)


def _alive(session: Any) -> bool:
    alive = getattr(session, "alive", None)
    return alive() if callable(alive) else not getattr(session, "closed", False)


def _forks(session: Any, n: int) -> list[Any]:
    """`n` forks in one request (fork_many) where the backend offers it."""
    if hasattr(session, "fork_many"):
        return session.fork_many(n)
    out: list[Any] = []
    try:
        for _ in range(n):
            out.append(session.fork())
    except BaseException:
        for f in out:
            f.close()
        raise
    return out


def _vote(candidates: list[Candidate]) -> int:
    """Index of the winner: the first member of the largest outcome group (ties: earliest)."""
    groups: dict[str, list[int]] = {}
    for cand in candidates:
        if cand.outcome_key is not None:
            groups.setdefault(cand.outcome_key, []).append(cand.index)
    for cand in candidates:
        cand.group_size = len(groups.get(cand.outcome_key, [])) if cand.outcome_key else 0
    # none valid: keep the first candidate and observe its error (as the paper does)
    chosen = max(groups.values(), key=lambda members: (len(members), -members[0]))[0] if groups else 0
    candidates[chosen].chosen = True
    return chosen
