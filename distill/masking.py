"""Assistant-only loss: tokenize a conversation with any chat template and mark the assistant tokens."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__all__ = ["assistant_spans", "build_dataset", "tokenize_conversation"]


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], gen: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=gen)


def assistant_spans(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans the model must learn.

    A span runs from the end of the generation prompt before an assistant turn
    (e.g. after ``<|im_start|>assistant\\n``) to the end of that turn including
    its end-of-turn marker (``<|im_end|>``), without trailing whitespace. It is
    found by rendering the conversation up to each assistant turn, so it works
    with whatever the chat template adds; a template that does not render
    prefixes of the conversation as prefixes of the whole raises ValueError.
    """
    full = _render(tokenizer, messages, False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], True)
        upto = _render(tokenizer, messages[: i + 1], False)
        if not (full.startswith(before) and full.startswith(upto) and len(upto) > len(before)):
            raise ValueError(
                f"the chat template does not render turn {i} as a prefix of the whole conversation; "
                "assistant tokens cannot be located"
            )
        spans.append((len(before), len(upto.rstrip())))
    return full, spans


def tokenize_conversation(
    tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int | None = None
) -> dict[str, list[int]]:
    """``input_ids`` and ``assistant_masks`` (1 on tokens of assistant turns, 0 on system, task, observations).

    A token counts as assistant when its first character lies in an assistant
    span. ``max_length`` keeps the start.
    """
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    mask = []
    for start, end in enc["offset_mapping"]:
        inside = any(s <= start < e for s, e in spans) and end > start
        mask.append(int(inside))
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "assistant_masks": mask}


def build_dataset(sft_path: str | os.PathLike[str], tokenizer: Any, max_length: int | None = None) -> Any:
    """A pre-tokenized ``datasets.Dataset`` (input_ids, assistant_masks) from an SFT JSONL.

    Conversations left with no assistant token after truncation are dropped.
    TRL's SFTTrainer turns ``assistant_masks`` into labels (-100 elsewhere).
    """
    from datasets import load_dataset

    raw = load_dataset("json", data_files=str(sft_path), split="train")
    rows = [tokenize_conversation(tokenizer, ex["messages"], max_length) for ex in raw]
    rows = [r for r in rows if any(r["assistant_masks"])]
    if not rows:
        raise ValueError(f"{sft_path}: no conversation has assistant tokens within max_length={max_length}")
    from datasets import Dataset

    return Dataset.from_list(rows)
