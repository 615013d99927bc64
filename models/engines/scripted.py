"""ScriptedEngine: a stateless scripted engine for servers running many runs at once.

``ReplayEngine`` hands out its script in call order, which only works for one
run at a time. Here the response is a function of the conversation itself: the
task (its last ``New task:`` user message, else its first user message) picks
a script, and the number of assistant turns since then picks the step (so the
second turn of a conversation gets its own script). So concurrent runs, batched calls and a run
resumed by a fresh process all get the right response.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from tinyact.errors import ReplayError
from tinyact.models.engines.base import Conversation, OnToken, as_messages, chunk_text, prefixes_for
from tinyact.models.engines.replay import ReplayEngine
from tinyact.schema import Completion, SamplingParams

__all__ = ["ScriptedEngine", "act"]


def act(code: str, thought: str = "go") -> str:
    """A well-formed CodeAct model output running ``code``."""
    return f"Thought: {thought}\nCode:\n```py\n{code}\n```"


class ScriptedEngine:
    """Responds by task and step.

    Args:
        scripts: task text (or a callable ``task -> script | None``) -> list of
            responses, one per step (the last one repeats if the run goes on).
        delay: seconds each ``generate`` call sleeps (to model engine latency).
        token_delay: seconds ``generate_stream`` sleeps before each word it reports.

    Example:
        >>> engine = ScriptedEngine({"2+2?": [act("final_answer(4)")]})
    """

    name = "scripted"

    def __init__(
        self, scripts: Mapping[str, Sequence[str]] | Callable[[str], Sequence[str] | None], *,
        model: str = "scripted", delay: float = 0.0, token_delay: float = 0.0,
    ) -> None:
        self.token_delay = token_delay
        self.scripts = scripts
        self.model = model
        self.delay = delay
        self.calls = 0
        self.conversations = 0

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        n: int = 1,
        sampling: SamplingParams | None = None,
        stop: Sequence[str] = (),
        prefix: str | Sequence[str | None] | None = None,
    ) -> list[list[Completion]]:
        self.calls += 1
        self.conversations += len(conversations)
        if self.delay:
            time.sleep(self.delay)
        out = []
        for conv, pre in zip(conversations, prefixes_for(prefix, len(conversations))):
            msgs = as_messages(conv)
            starts = [i for i, m in enumerate(msgs) if m.role == "user" and m.content.startswith("New task:\n")]
            start = starts[-1] if starts else next((i for i, m in enumerate(msgs) if m.role == "user"), 0)
            task = msgs[start].content.removeprefix("New task:\n") if msgs else ""
            script = self.scripts(task) if callable(self.scripts) else self.scripts.get(task)
            if not script:
                raise ReplayError(f"no script for task {task[:80]!r}")
            step = sum(m.role == "assistant" for m in msgs[start:])
            text = script[min(step, len(script) - 1)]
            out.append([ReplayEngine._complete(text, msgs, pre, stop) for _ in range(n)])
        return out

    def generate_stream(
        self, conversation: Conversation, *, n: int = 1, sampling: SamplingParams | None = None,
        stop: Sequence[str] = (), prefix: str | None = None, on_token: OnToken,
    ) -> list[Completion]:
        """``generate`` for one conversation, the first sample's text reported word by word."""
        (completions,) = self.generate([conversation], n=n, sampling=sampling, stop=stop, prefix=prefix)
        for piece in chunk_text(completions[0].text[len(prefix or ""):]):
            if self.token_delay:
                time.sleep(self.token_delay)
            on_token(piece)
        return completions
