"""Trajectories on disk (JSONL) and as chat messages for fine-tuning."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from tinyact import jsonl
from tinyact.agents.observation import observation_message
from tinyact.schema import Trajectory

__all__ = ["append_jsonl", "committed_code", "read_jsonl", "to_messages"]


def to_messages(trajectory: Trajectory, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The run as chat turns, in the form the paper's SFT data used.

    system prompt, "New task:\\n<task>", then per step the assistant's thought and
    code (ending ``<end_code>``) and the observation as the next user turn. Pass
    ``system_prompt`` to swap in the short student prompt.
    """
    from tinyact.agents.nodes import task_message

    messages = [
        {"role": "system", "content": system_prompt if system_prompt is not None else trajectory.system_prompt},
        {"role": "user", "content": task_message(trajectory.task)},
    ]
    for step in trajectory.steps:
        text = step.model_output.rstrip()
        if text.endswith("```"):
            text += "<end_code>"
        messages.append({"role": "assistant", "content": text})
        if step.result is not None and step.result.called_final_answer:
            break  # the run ended here; nothing more for the model to learn
        messages.append({"role": "user", "content": observation_message(step.observation)})
    return messages


def committed_code(trajectory: Trajectory) -> list[str]:
    """The code the run executed and kept, in order (what rebuilds its sandbox)."""
    return [s.action.code for s in trajectory.steps if s.result is not None and s.action.code]


def append_jsonl(path: str | os.PathLike[str], trajectories: Iterable[Trajectory]) -> None:
    """Append trajectories, one fsynced line each (a torn last line is cut back first; see ``tinyact.jsonl``)."""
    jsonl.append(path, (t.to_jsonl() for t in trajectories))


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Read trajectories back; a truncated last line (a crash mid-write) is skipped, any other bad line raises."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no trajectories file at {path}")
    lines = list(jsonl.read_lines(path))
    for i, line in enumerate(lines):
        try:
            yield Trajectory.from_jsonl(line)
        except ValueError:
            if i == len(lines) - 1:
                return
            raise
