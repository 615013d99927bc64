"""Versioned prompt templates of the chain-of-thought baseline (the paper's teacher CoT setup)."""

from __future__ import annotations

from typing import Literal

from tinyact.schema import Message

__all__ = ["COT_PROMPTS", "COT_PROMPT_VERSION", "cot_messages"]

COT_PROMPT_VERSION = "cot-v1"
"""Bump when any template below changes; runs record it in config.json."""

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

COT_PROMPTS: dict[str, dict[str, str]] = {
    "qa": {"system": _QA_SYSTEM, "user": _QA_USER},
    "math": {"system": _MATH_SYSTEM, "user": _MATH_USER},
}


def cot_messages(question: str, kind: Literal["qa", "math"]) -> list[Message]:
    """The chat messages asking for a chain-of-thought answer.

    Args:
        question: The question or problem text.
        kind: ``"qa"`` (answer in ``<answer>`` tags) or ``"math"`` (``\\boxed{}``).

    Returns:
        A system and a user message.

    Example:
        >>> cot_messages("What is 2+2?", "math")[1].content.endswith("\\\\boxed{}.")
        True
    """
    tpl = COT_PROMPTS[kind]
    return [
        Message(role="system", content=tpl["system"]),
        Message(role="user", content=tpl["user"].format(question=question)),
    ]
