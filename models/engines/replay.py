"""ReplayEngine: returns scripted or recorded completions, in order, and fails
loudly on a call its script did not expect (or a script left unconsumed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from tinyact.errors import ReplayError
from tinyact.models.engines.base import Conversation, OnToken, apply_stop, as_messages, chunk_text, prefixes_for
from tinyact.schema import Completion, Message, SamplingParams, Trajectory

__all__ = ["ReplayEngine"]

Response = Union[str, Completion, Sequence[Union[str, Completion]]]
"""What one conversation gets from one call: a text (repeated n times) or n texts."""


class ReplayEngine:
    """An engine whose outputs are given in advance.

    Each conversation in each ``generate`` call takes the next response of the
    script. A response is a string (given to all ``n`` samples) or a list of
    exactly ``n`` strings. Stop strings and prefixes are applied as a real
    engine would, so scripted text that runs past ``<end_code>`` is cut there.

    Example:
        >>> engine = ReplayEngine(["Thought: add\\nCode:\\n```py\\nfinal_answer(1+1)\\n```<end_code>"])
        >>> engine.generate([[Message(role="user", content="1+1?")]], stop=["<end_code>"])[0][0].stop
        '<end_code>'
    """

    name = "replay"

    def __init__(self, script: Sequence[Response], *, model: str = "replay") -> None:
        self.script: list[Response] = list(script)
        self.model = model
        self.position = 0
        self.calls: list[dict] = []
        """Every call, in order: conversations, n, sampling, stop, prefix."""

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory) -> ReplayEngine:
        """Replay a recorded run: each step's candidates (or its one output), in order."""
        script: list[Response] = []
        for step in trajectory.steps:
            if len(step.candidates) > 1:
                script.append([c.text for c in sorted(step.candidates, key=lambda c: c.index)])
            else:
                script.append(step.model_output)
        answer_call = trajectory.metadata.get("final_answer_call_output")
        if answer_call is not None:
            script.append(answer_call)
        return cls(script, model=trajectory.model or "replay")

    @property
    def remaining(self) -> int:
        return len(self.script) - self.position

    def assert_consumed(self) -> None:
        if self.remaining:
            raise ReplayError(f"{self.remaining} scripted response(s) were never requested")

    def __enter__(self) -> ReplayEngine:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.assert_consumed()

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]:
        convs = [as_messages(c) for c in conversations]
        prefixes = prefixes_for(prefix, len(convs))
        self.calls.append(
            {"conversations": convs, "n": n, "sampling": sampling, "stop": list(stop), "prefix": prefix}
        )
        out: list[list[Completion]] = []
        for conv, pre in zip(convs, prefixes):
            if self.position >= len(self.script):
                last = conv[-1].content[:80] if conv else ""
                raise ReplayError(
                    f"unexpected call #{len(self.calls)}: the script has {len(self.script)} "
                    f"response(s), all used (last message: {last!r})"
                )
            response = self.script[self.position]
            self.position += 1
            items = [response] * n if isinstance(response, (str, Completion)) else list(response)
            if len(items) != n:
                raise ReplayError(f"scripted response #{self.position} has {len(items)} samples, asked for n={n}")
            out.append([self._complete(item, conv, pre, stop) for item in items])
        return out

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """``generate`` for one conversation, the first sample's text reported word by word."""
        (completions,) = self.generate([conversation], n=n, sampling=sampling, stop=stop, prefix=prefix)
        for piece in chunk_text(completions[0].text[len(prefix or ""):]):
            on_token(piece)
        return completions

    @staticmethod
    def _complete(item: str | Completion, conv: list[Message], prefix: str | None, stop: Sequence[str]) -> Completion:
        if isinstance(item, Completion):
            return item
        body = item[len(prefix):] if prefix and item.startswith(prefix) else item
        cut, matched = apply_stop(body, stop)
        prompt_chars = sum(len(m.content) for m in conv)
        return Completion(
            text=(prefix or "") + cut,
            finish_reason="stop" if matched else "eos",
            stop=matched,
            # A rough count (4 characters a token) so budgets behave plausibly.
            prompt_tokens=max(1, prompt_chars // 4),
            completion_tokens=max(1, len(cut) // 4),
        )
