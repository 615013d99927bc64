"""Versioned prompt templates of the chain-of-thought baseline (the paper's teacher CoT setup)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from tinyact.schema import Message

__all__ = ["COT_PROMPTS", "COT_PROMPT_VERSION", "PASSAGE_CHARS", "RAG_PROMPT_VERSION", "cot_messages",
           "cot_prompt_sha256", "format_passages"]

COT_PROMPT_VERSION = "cot-v1"
"""Bump when any template below changes; runs record it in config.json."""

RAG_PROMPT_VERSION = "rag-v1"
"""Bump when the passage block (``_PASSAGES``, ``format_passages``, ``PASSAGE_CHARS``) changes."""

PASSAGE_CHARS = 800
"""Each passage's text is cut to this many characters (5 passages: about 1k tokens)."""

_QA_SYSTEM = """You are a helpful assistant that answers factual questions.
Think step by step: recall the facts needed, one at a time, and combine them
to reach the answer. Then write the final answer inside <answer></answer> tags.
The final answer must be short: an entity name, a date, a number, or yes/no,
without any explanation."""

_QA_USER = """Question: {question}

Reason step by step, then give the final answer as <answer>...</answer>."""

_MATH_SYSTEM = """You are a helpful assistant that solves math problems.
Reason step by step, showing the intermediate calculations, and check your
result. Put the final answer, and only the final answer, in \\boxed{}."""

_MATH_USER = """Problem: {question}

Please reason step by step, and put your final answer within \\boxed{{}}."""

_PASSAGES = """Retrieved passages (some may be irrelevant):

{passages}

"""

COT_PROMPTS: dict[str, dict[str, str]] = {
    "qa": {"system": _QA_SYSTEM, "user": _QA_USER},
    "math": {"system": _MATH_SYSTEM, "user": _MATH_USER},
}


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending " ..." when cut (cutting twice changes nothing)."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 4].rstrip() + " ..."


def _field(passage: Any, name: str) -> str:
    return str(passage.get(name, "") if isinstance(passage, Mapping) else getattr(passage, name, ""))


def format_passages(passages: Sequence[Any], max_chars: int = PASSAGE_CHARS) -> str:
    """Numbered passages, ``[n] Title`` then the text cut to ``max_chars``.

    A passage is anything with ``title`` and ``text`` (a retrieval hit, a
    ``Document``) or a ``{"title", "text"}`` dict.

    Example:
        >>> print(format_passages([{"title": "Paris", "text": "Paris is the capital of France."}]))
        [1] Paris
        Paris is the capital of France.
    """
    return "\n\n".join(f"[{i}] {_field(p, 'title')}\n{_cut(_field(p, 'text'), max_chars)}"
                       for i, p in enumerate(passages, start=1))


def cot_messages(question: str, kind: Literal["qa", "math"], passages: Sequence[Any] | None = None) -> list[Message]:
    """The chat messages asking for a chain-of-thought answer.

    Args:
        question: The question or problem text.
        kind: ``"qa"`` (answer in ``<answer>`` tags) or ``"math"`` (``\\boxed{}``).
        passages: Retrieved passages to show before the question (RAG); None or
            empty: the plain prompt, unchanged.

    Returns:
        A system and a user message.

    Example:
        >>> cot_messages("What is 2+2?", "math")[1].content.endswith("\\\\boxed{}.")
        True
    """
    tpl = COT_PROMPTS[kind]
    user = tpl["user"].format(question=question)
    if passages:
        user = _PASSAGES.format(passages=format_passages(passages)) + user
    return [
        Message(role="system", content=tpl["system"]),
        Message(role="user", content=user),
    ]


def cot_prompt_sha256() -> str:
    """sha256 of every CoT template and the passage block (what a manifest pins the prompt by)."""
    data = {"cot": COT_PROMPTS, "passages": _PASSAGES, "passage_chars": PASSAGE_CHARS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
