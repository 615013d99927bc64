"""Pydantic models shared by every layer: messages, completions, code actions,
execution results, candidates, steps and trajectories.

Everything here crosses a boundary (engine, sandbox RPC, HTTP, JSONL on disk),
so it is pydantic and JSON-serializable; values that never leave a module are
plain dataclasses next to the code that uses them.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Candidate",
    "CodeAction",
    "Completion",
    "EndReason",
    "ExecError",
    "ExecResult",
    "FinishReason",
    "Message",
    "Role",
    "SamplingParams",
    "Step",
    "Trajectory",
    "Usage",
]

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "eos"]
EndReason = Literal[
    "final_answer",  # the model called final_answer
    "max_steps",  # step budget spent; a last greedy call asked for the answer
    "time_budget",  # wall-clock budget spent
    "token_budget",  # token budget spent
    "cancelled",  # stopped from outside (API DELETE, Ctrl-C)
    "rejected",  # a human rejected the code action and asked to stop
    "error",  # tinyact or its infrastructure failed (not the model)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Model):
    """One chat turn."""

    role: Role
    content: str


class SamplingParams(_Model):
    """How to sample. ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    """0 is greedy decoding; > 0 samples."""
    top_p: float = 1.0
    """Nucleus sampling mass, in (0, 1]."""
    max_tokens: int = 512
    """Upper bound on generated tokens per completion (the prefix not counted)."""
    seed: int | None = None
    """Seed for reproducible sampling; None leaves the engine's RNG as it is."""

    @field_validator("temperature")
    @classmethod
    def _check_temperature(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"temperature must be >= 0, got {v}")
        return v

    @field_validator("top_p")
    @classmethod
    def _check_top_p(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {v}")
        return v

    @field_validator("max_tokens")
    @classmethod
    def _check_max_tokens(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"max_tokens must be >= 1, got {v}")
        return v

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Completion(_Model):
    """One generated continuation of a conversation.

    ``text`` starts with the prefix when one was given, and never contains the
    stop string that ended it (that is in ``stop``).
    """

    text: str
    finish_reason: FinishReason
    stop: str | None = None
    """The stop string that ended the text, when finish_reason is "stop"."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Generated tokens, the stop string's tokens included, the prefix excluded."""


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CodeAction(_Model):
    """A parsed model output: its thought and the code to run."""

    thought: str = ""
    code: str = ""
    """All code blocks of the output, joined in order; empty when none parsed."""
    blocks: list[str] = Field(default_factory=list)
    parse_error: str | None = None
    """Why no runnable code was found (None when parsing succeeded)."""

    @property
    def ok(self) -> bool:
        return self.parse_error is None and bool(self.code.strip())


class ExecError(_Model):
    type: str
    """Exception class name, e.g. "ZeroDivisionError", "TimeoutError", "MemoryError"."""
    message: str
    traceback: str = ""
    """Traceback trimmed to the frames of the user's code."""


class ExecResult(_Model):
    """What one ``Session.execute(code)`` did."""

    stdout: str = ""
    stderr: str = ""
    error: ExecError | None = None
    final_answer: Any = None
    """The value passed to final_answer (JSON-safe; repr() when not serializable)."""
    called_final_answer: bool = False
    value: str | None = None
    """repr() of the value of the last expression statement, if any."""
    duration_s: float = 0.0
    truncated: bool = False
    """Output was cut at the limit (a marker was appended)."""
    rolled_back: bool = False
    """The execution was killed (timeout, crash, a dead sandbox): the session's
    variables are as they were before it, and a replay must skip it."""

    @property
    def ok(self) -> bool:
        return self.error is None


class Candidate(_Model):
    """One sampled action at a step, with what it did when executed."""

    index: int
    text: str
    action: CodeAction
    result: ExecResult | None = None
    """None when it was not executed (it did not parse)."""
    outcome_key: str | None = None
    """The vote key; None for candidates filtered out (parse error, exception)."""
    group_size: int = 0
    chosen: bool = False
    completion_tokens: int = 0
    seconds: float = 0.0


class Step(_Model):
    """One turn of the loop: model output, action, observation."""

    index: int
    model_output: str
    action: CodeAction
    observation: str
    result: ExecResult | None = None
    error: str | None = None
    """Set when the step failed (parse error, exception in the code, timeout)."""
    candidates: list[Candidate] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model_seconds: float = 0.0
    exec_seconds: float = 0.0
    approval: Literal["approved", "edited", "rejected"] | None = None
    sandbox_rebuilt: bool = False
    """The sandbox died during this step and was rebuilt by replaying the committed code."""


class Trajectory(_Model):
    """A whole run: task, settings, steps, answer. One JSONL line on disk."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    task: str
    model: str = ""
    engine: str = ""
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    samples: int = 1
    prompt_version: str = ""
    system_prompt: str = ""
    prefix: str | None = None
    steps: list[Step] = Field(default_factory=list)
    final_answer: Any = None
    end_reason: EndReason | None = None
    usage: Usage = Field(default_factory=Usage)
    started_at: float = Field(default_factory=time.time)
    seconds: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)

    def to_jsonl(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_jsonl(cls, line: str) -> Trajectory:
        return cls.model_validate_json(line)
