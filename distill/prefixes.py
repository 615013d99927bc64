"""First-thought prefixes: the teacher's first CoT paragraph, to start its first agent step."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tinyact.jsonl import JsonlWriter, iter_lines

if TYPE_CHECKING:
    from tinyact.eval.datasets import Question
    from tinyact.models.engines.base import Engine
    from tinyact.schema import SamplingParams

__all__ = ["first_thought", "generate_prefixes", "load_prefixes", "make_prefix"]

PARAGRAPH_STOP = "\n\n"
"""Where prefix generation stops: the end of the first paragraph."""
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LEAD = re.compile(r"^\s*(thought\s*:|reasoning\s*:|step\s*1\s*[:.)-])\s*", re.IGNORECASE)
_ANSWER = re.compile(r"<answer>|\\boxed")
"""Where a CoT answer (``eval.prompts`` CoT prompts) states its answer: a first thought never reaches it."""


def first_thought(cot: str) -> str | None:
    """The first paragraph of a CoT answer (text up to the first blank line), or None when empty.

    A leading "Thought:" is dropped (the prefix adds its own). A first thought must not hand the agent its
    answer: when the paragraph runs on to the answer (``<answer>``, ``\\boxed``), as one-paragraph QA
    answers do, only its first line is kept, and no thought when that line holds the answer too.

    Example:
        >>> first_thought("First, multiply.\\nThen add.\\n\\nSo 42.")
        'First, multiply.\\nThen add.'
        >>> first_thought("I recall both dates:\\nA: 1969, B: 1970.\\n<answer>A</answer>")
        'I recall both dates:'
    """
    text = cot.replace("\r\n", "\n").strip()
    text = _LEAD.sub("", text, count=1).lstrip()
    para = _PARAGRAPH_BREAK.split(text, maxsplit=1)[0].strip()
    if _ANSWER.search(para):
        para = para.split("\n", 1)[0].strip()
        if _ANSWER.search(para):
            return None
    return para or None


def make_prefix(cot: str) -> str | None:
    """``"Thought: " + first paragraph + blank line``, or None when the answer is empty.

    Example:
        >>> make_prefix("I need the product.\\n\\n12 * 3 = 36")
        'Thought: I need the product.\\n\\n'
    """
    para = first_thought(cot)
    return None if para is None else f"Thought: {para}\n\n"


def load_prefixes(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{question id: prefix}`` from a prefixes JSONL (questions without a prefix left out).

    The prefix is made again from each line's CoT text (``cot``) by today's ``make_prefix``, so a file
    written under an older rule gives today's prefixes (``collect_trajectories`` then reruns the
    trajectories that continued an older one); lines without a CoT text keep their stored prefix."""
    out = {}
    for r in iter_lines(path):
        cot = r.get("cot")
        prefix = make_prefix(cot) if isinstance(cot, str) and cot.strip() else r.get("prefix")
        if prefix:
            out[r["id"]] = prefix
    return out


def generate_prefixes(
    engine: Engine,
    questions: Sequence[Question],
    out_path: str | os.PathLike[str],
    *,
    teacher: str = "",
    sampling: SamplingParams | None = None,
    batch_size: int = 8,
    stop: Sequence[str] = (PARAGRAPH_STOP,),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """Ask the teacher for a CoT answer to each question and store its first-thought prefix.

    Generation stops at the first blank line (``stop``): only the first paragraph
    becomes the prefix, so the rest of the answer would be generated for nothing
    (the CoT baseline's stage continues these starts where it needs whole answers).

    Resumable: questions already in ``out_path`` are skipped; each line
    records the teacher, prompt version and sampling used, the CoT text so far
    (``cot``), how it ended (``finish_reason``, ``stop``), and the prefix. QA
    questions get the QA CoT prompt, everything else the math one.

    Returns:
        ``{question id: prefix}`` for every question in the file.
    """
    from tinyact.eval.prompts import COT_PROMPT_VERSION, cot_messages
    from tinyact.schema import SamplingParams

    sampling = sampling or SamplingParams(temperature=0.0, max_tokens=256)
    done = {r["id"] for r in iter_lines(out_path)}
    todo = [q for q in questions if q.id not in done]
    already = len(questions) - len(todo)  # ``done`` may hold ids of other questions (a larger earlier run)
    if progress:
        progress(already, len(questions))
    from tinyact.console import drain_on_interrupt

    with drain_on_interrupt("prefixes") as stopping, JsonlWriter(out_path) as w:
        for i in range(0, len(todo), batch_size):
            if stopping():  # Ctrl-C: the batch in flight is saved, no new one starts
                break
            batch = todo[i : i + batch_size]
            kinds = ["qa" if q.metadata.get("grader") == "qa" else "math" for q in batch]
            convs = [cot_messages(q.question, k) for q, k in zip(batch, kinds)]
            started = time.time()
            outputs = engine.generate(convs, n=1, sampling=sampling, stop=list(stop))
            seconds = (time.time() - started) / max(1, len(batch))
            for q, kind, comps in zip(batch, kinds, outputs):
                cot = comps[0].text
                record: dict[str, Any] = {
                    "id": q.id,
                    "prefix": make_prefix(cot),
                    "first_thought": first_thought(cot),
                    "cot": cot,
                    "finish_reason": comps[0].finish_reason,
                    "stop": comps[0].stop,
                    "teacher": teacher or getattr(engine, "model_name", "") or engine.name,
                    "prompt": f"{COT_PROMPT_VERSION}/{kind}",
                    "sampling": sampling.model_dump(),
                    "completion_tokens": comps[0].completion_tokens,
                    "seconds": round(seconds, 3),
                }
                w.write(record)
            if progress:
                progress(already + i + len(batch), len(questions))
    return load_prefixes(out_path)
