"""Loop detection: an action identical to an earlier step's is named in the observation,
and with k > 1 the vote prefers candidates that do something new.

Small models loop: on multi-hop questions the untuned 0.5B agent writes the same
``print(search("..."))`` step after step until the step limit. Two actions are
identical when their code parses to the same syntax tree (comments, blank lines
and spacing do not count); code that does not parse compares as stripped lines.

With k > 1 the candidates that repeat an earlier step are set aside when at least
one other candidate parsed: the vote runs among the new ones only, and the set
aside candidates are recorded unexecuted (``result`` None, ``action.ok`` True).
When every parseable candidate is a repeat, they all vote as usual.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tinyact.agents.parsing import parse_action
from tinyact.schema import Candidate, Completion

__all__ = ["REPEAT_NOTE", "action_key", "earlier_codes", "repeat_note", "repeated_step", "select_preferring_new"]

REPEAT_NOTE = (
    "Note: this code is identical to your step {step}, so it cannot tell you anything new. "
    "Do not repeat it: try a different action (another search query, another computation), "
    "or call final_answer with what you already know."
)


def action_key(code: str) -> str:
    """What two identical actions share: the dump of the syntax tree, else the stripped lines."""
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError):
        return "\n".join(line.strip() for line in code.strip().splitlines() if line.strip())


def earlier_codes(steps: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The code of every earlier step that had runnable code (state["steps"] records)."""
    codes = []
    for step in steps or []:
        action = step.get("action") or {}
        code = action.get("code") or ""
        codes.append(code if code.strip() and not action.get("parse_error") else "")
    return codes


def repeated_step(code: str, earlier: Sequence[str]) -> int | None:
    """The 1-based number of the first earlier step whose code is identical, or None."""
    if not code.strip():
        return None
    key = action_key(code)
    for i, previous in enumerate(earlier):
        if previous and action_key(previous) == key:
            return i + 1
    return None


def repeat_note(code: str, earlier: Sequence[str]) -> str | None:
    """The line appended to the observation of a repeated action, or None."""
    step = repeated_step(code, earlier)
    return None if step is None else REPEAT_NOTE.format(step=step)


def select_preferring_new(
    select: Callable[..., Any], session: Any, completions: Sequence[Completion], earlier: Sequence[str], **kw: Any
) -> Any:
    """Run ``select(session, completions, **kw)`` (``select_candidates``) on the candidates
    that do something new, when there are both new and repeated ones; the outcome's
    ``chosen`` and candidate indices refer to ``completions`` as given."""
    if len(completions) < 2 or not any(earlier):
        return select(session, completions, **kw)
    actions = [parse_action(c.text) for c in completions]
    repeats = {i for i, a in enumerate(actions) if a.ok and repeated_step(a.code, earlier) is not None}
    fresh = [i for i, a in enumerate(actions) if a.ok and i not in repeats]
    if not repeats or not fresh:
        return select(session, completions, **kw)
    kept = [i for i in range(len(completions)) if i not in repeats]
    outcome = select(session, [completions[i] for i in kept], **kw)
    by_index: dict[int, Candidate] = {}
    for cand in outcome.candidates:
        original = kept[cand.index]
        by_index[original] = cand.model_copy(update={"index": original})
    for i in repeats:
        by_index[i] = Candidate(index=i, text=completions[i].text, action=actions[i],
                                completion_tokens=completions[i].completion_tokens)
    outcome.candidates = [by_index[i] for i in range(len(completions))]
    outcome.chosen = kept[outcome.chosen]
    return outcome
