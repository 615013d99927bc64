"""SFT data: trajectories as chat conversations (TRL's conversational JSONL), and the paper's released logs."""

from __future__ import annotations

import json
import os
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tinyact import jsonl
from tinyact.schema import Trajectory

__all__ = ["from_smolagents_messages", "import_smolagents_logs", "student_system_prompt", "to_sft_example",
           "write_sft_data"]


def student_system_prompt(prompt: str = "short", tools: Sequence[Any] = ()) -> str:
    """The system prompt the student is trained with (and must be run with): the short one by default."""
    from tinyact.agents.prompts import render_system_prompt
    from tinyact.tools.base import as_tools

    return render_system_prompt(prompt, as_tools(tools))[0]


def to_sft_example(trajectory: Trajectory, system_prompt: str) -> dict[str, Any]:
    """One conversation: system prompt, task, assistant turns (thought + code), observations as user turns."""
    from tinyact.agents.trajectory import to_messages

    return {
        "id": trajectory.metadata.get("question_id", trajectory.id),
        "messages": to_messages(trajectory, system_prompt=system_prompt),
    }


def write_sft_data(
    trajectories: Iterable[Trajectory],
    out_path: str | os.PathLike[str],
    *,
    system_prompt: str | None = None,
    extra: Iterable[dict[str, Any]] = (),
) -> int:
    """Write ``{"id", "messages"}`` lines (``datasets.load_dataset("json", ...)`` reads them; TRL's
    conversational format). ``extra``: more examples, e.g. imported logs. Returns the count."""
    system_prompt = system_prompt if system_prompt is not None else student_system_prompt()
    examples = itertools.chain((to_sft_example(t, system_prompt) for t in trajectories), extra)
    return jsonl.rewrite(out_path, examples)


# ------------------------------------------------------------ released logs

_CALL_ID = re.compile(r"^\s*Call id:\s*\S+\s*\n", re.IGNORECASE)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # smolagents: [{"type": "text", "text": ...}, ...]
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


def from_smolagents_messages(
    messages: Sequence[dict[str, Any]], *, system_prompt: str | None = None
) -> list[dict[str, str]]:
    """Convert a smolagents memory log (``agent.write_memory_to_messages()``, the form the paper's
    released trajectories are in) to tinyact's SFT turns.

    Roles ``system``/``user``/``assistant`` keep their text (content may be a
    list of ``{"type": "text", "text"}`` parts); ``tool-call`` turns (the
    "Calling tools: [...python_interpreter...]" echo of the code) are dropped;
    ``tool-response`` turns become user turns starting "Observation:" (the
    "Call id: ..." line removed). Consecutive user turns are merged, as
    smolagents does. ``system_prompt`` replaces the logged one (e.g. the short
    student prompt).
    """
    out: list[dict[str, str]] = []
    for m in messages:
        role = str(m.get("role", "")).lower().replace("_", "-")
        text = _text(m.get("content"))
        if role in ("tool-call", "planning"):
            continue
        if role == "tool-response":
            role = "user"
            text = _CALL_ID.sub("", text, count=1).strip()
            if not text.lower().startswith("observation"):
                text = "Observation:\n" + text
        if role == "assistant":
            text = text.rstrip()
            if text.endswith("```"):
                text += "<end_code>"
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"unknown role {m.get('role')!r} in a smolagents log")
        if out and out[-1]["role"] == role == "user":
            out[-1]["content"] += "\n" + text
            continue
        out.append({"role": role, "content": text})
    if system_prompt is not None:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": system_prompt}
        else:
            out.insert(0, {"role": "system", "content": system_prompt})
    # nothing to learn after the last assistant turn
    while out and out[-1]["role"] != "assistant":
        out.pop()
    return out


def _messages_of(record: Any) -> list[dict[str, Any]] | None:
    if isinstance(record, list):
        return record
    if not isinstance(record, dict):
        return None
    for key in ("messages", "conversations", "memory"):
        if isinstance(record.get(key), list):
            return record[key]
    log = record.get("log_data")
    if isinstance(log, dict):
        return _messages_of(log)
    return None


def import_smolagents_logs(
    path: str | os.PathLike[str], *, system_prompt: str | None = None, only_correct: bool = True
) -> Iterator[dict[str, Any]]:
    """SFT examples from a file of smolagents-style logs (JSONL, or a JSON list of records).

    Each record is a message list, or an object holding one under ``messages``
    / ``conversations`` / ``memory`` / ``log_data.messages``. Records that say
    they are wrong (``"correct": false`` or ``"score": 0``) are skipped when
    ``only_correct``.
    """
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for i, rec in enumerate(records):
        msgs = _messages_of(rec)
        if msgs is None:
            raise ValueError(f"{path}: record {i} holds no message list")
        if only_correct and isinstance(rec, dict):
            if rec.get("correct") is False or rec.get("score") in (0, 0.0, False):
                continue
        turns = from_smolagents_messages(msgs, system_prompt=system_prompt)
        if any(t["role"] == "assistant" for t in turns):
            rid = rec.get("id", rec.get("question_id", i)) if isinstance(rec, dict) else i
            yield {"id": str(rid), "messages": turns}
