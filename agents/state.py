"""The graph state: JSON-serializable data only (ids, messages, step records).

Live resources (the engine, sandbox sessions) are not here: they travel in the
run's context (``AgentContext``) and a registry keyed by ``run_id``.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

__all__ = ["AgentState"]


class AgentState(TypedDict, total=False):
    run_id: str
    task: str
    prefix: str | None
    history: list[dict]
    """Earlier turns of a conversation ({"role", "content"}), between the system prompt and the task."""
    setup: list[str]
    """Code that earlier turns committed, replayed into a fresh sandbox before the first step."""
    messages: list[dict]
    """The conversation so far, as {"role", "content"} dicts."""
    steps: Annotated[list[dict], operator.add]
    """Committed steps (``Step.model_dump()``), appended by observe."""
    proposals: list[dict]
    """The current step's completions (``Completion.model_dump()``), set by propose."""
    model_seconds: float
    """How long the current step's engine call took (set by propose, recorded by observe)."""
    pending: dict | None
    """The selected action and its result, handed from select to observe."""
    usage: dict
    final_answer: Any
    end_reason: str | None
    final_call_output: str | None
    started_at: float
