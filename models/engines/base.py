"""The engine protocol every model backend implements, and its shared helpers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from tinyact.schema import Completion, Message, SamplingParams

__all__ = [
    "Conversation", "Engine", "OnToken", "StopFilter", "StreamingEngine", "apply_stop", "as_messages",
    "chunk_text", "generate_streaming", "normalize_call",
]

Conversation = Sequence[Message]
OnToken = Callable[[str], None]
"""Called with each new piece of the first sample's text, as it is generated."""


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


@runtime_checkable
class StreamingEngine(Engine, Protocol):
    """An engine that can also report text while it generates (optional; see ``generate_streaming``).

    ``generate_stream`` is ``generate`` for ONE conversation that calls
    ``on_token(text)`` with each new piece of the FIRST sample's text (with
    ``n > 1`` the other samples are generated alongside, unseen) and returns
    that conversation's ``n`` completions, exactly as ``generate`` would. The
    pieces are a preview: wrap ``on_token`` in a ``StopFilter`` so nothing at or
    after a stop string is reported; the returned completions are the truth.
    The prefix is not reported (the caller has it).

    To add streaming to an engine (llama.cpp: ``create_completion(stream=True)``),
    implement this one method; callers fall back to ``generate`` without it.
    """

    def generate_stream(
        self,
        conversation: Conversation,
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | None = None,
        on_token: OnToken,
    ) -> list[Completion]: ...


def generate_streaming(
    engine: Any, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
    stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
) -> list[Completion]:
    """``engine.generate_stream`` where the engine has it; else ``generate``, and the
    first sample's text reported in one piece at the end."""
    stream = getattr(engine, "generate_stream", None)
    if stream is not None:
        return stream(conversation, n=n, sampling=sampling, stop=stop, prefix=prefix, on_token=on_token)
    (completions,) = engine.generate([conversation], n=n, sampling=sampling, stop=stop, prefix=prefix)
    text = completions[0].text[len(prefix):] if prefix and completions[0].text.startswith(prefix) else completions[0].text
    if text:
        on_token(text)
    return completions


class StopFilter:
    """Wraps an ``on_token`` so it never sees a stop string or what follows it.

    Text that might be the start of a stop string is held back until the next
    piece decides it; ``flush()`` releases what is held at the end.
    """

    def __init__(self, on_token: OnToken, stop: Sequence[str]) -> None:
        self.on_token = on_token
        self.stop = [s for s in stop if s]
        self.held = ""
        self.stopped = False

    def __call__(self, piece: str) -> None:
        if self.stopped or not piece:
            return
        text = self.held + piece
        cut, matched = apply_stop(text, self.stop)
        if matched:
            self.stopped = True
            self.held = ""
            if cut:
                self.on_token(cut)
            return
        keep = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep:] if keep else ""
        if text[: len(text) - keep]:
            self.on_token(text[: len(text) - keep])

    def flush(self) -> None:
        if self.held and not self.stopped:
            self.on_token(self.held)
        self.held = ""


_PIECES = re.compile(r"\s*\S+|\s+")


def chunk_text(text: str) -> list[str]:
    """Word-sized pieces of ``text`` (leading whitespace attached), for engines that
    stream text they already have (replay, scripted)."""
    return _PIECES.findall(text)


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
