"""The engine protocol every model backend implements, and its shared helpers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from tinyact.schema import Completion, Message, SamplingParams

__all__ = ["Conversation", "Engine", "apply_stop", "as_messages", "normalize_call"]

Conversation = Sequence[Message]


@runtime_checkable
class Engine(Protocol):
    """A batched text generator.

    ``generate`` returns, for each conversation, ``n`` completions. With
    ``prefix`` set, the model continues that assistant text (chat template with
    ``continue_final_message=True``) and each returned text starts with it.
    Stop strings cut the text; the stop string itself is not part of ``text``.
    """

    name: str

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]: ...


def as_messages(conversation: Conversation | Sequence[dict]) -> list[Message]:
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in conversation]


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """Cut ``text`` at the earliest stop string. Returns (text, stop that matched)."""
    best: tuple[int, str] | None = None
    for s in stop:
        if not s:
            continue
        i = text.find(s)
        if i != -1 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def prefixes_for(prefix: str | Sequence[str | None] | None, count: int) -> list[str | None]:
    """Normalize the ``prefix`` argument to one entry per conversation."""
    if prefix is None or isinstance(prefix, str):
        return [prefix] * count
    out = list(prefix)
    if len(out) != count:
        from tinyact.errors import ConfigError

        raise ConfigError(f"prefix has {len(out)} entries for {count} conversations")
    return out


def normalize_call(
    conversations: Sequence[Conversation], n: int, sampling: SamplingParams | None,
    prefix: str | Sequence[str | None] | None,
) -> tuple[list[list[Message]], SamplingParams, list[str | None]]:
    """The checks and defaults every engine applies to ``generate``'s arguments.

    Returns (conversations as Messages, sampling, one prefix per conversation).
    """
    if n < 1:
        from tinyact.errors import ConfigError

        raise ConfigError(f"n must be >= 1, got {n}")
    convs = [as_messages(c) for c in conversations]
    return convs, sampling or SamplingParams(), prefixes_for(prefix, len(convs))
