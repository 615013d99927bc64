"""Wire types of the agent API: pydantic models only, no logic beyond validation.

Requests are validated when constructed, so bad input is a 422 naming the field,
never a 500. The OpenAI-compatible types follow the order of the official chat
completions reference (https://platform.openai.com/docs/api-reference/chat);
tinyact's additions are marked and live in the ``tinyact`` extension field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinyact.schema import Step, Trajectory, Usage

__all__ = [
    "ChatChoice",
    "ChatChunk",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatDelta",
    "ChatMessage",
    "ChatResponseMessage",
    "ChatUsage",
    "ErrorInfo",
    "ErrorResponse",
    "FinalEvent",
    "Health",
    "ModelCard",
    "ModelList",
    "Readiness",
    "RunEvent",
    "RunInfo",
    "RunList",
    "RunRequest",
    "RunStatus",
    "RunSummary",
    "TinyactExtension",
]

RunStatus = Literal["queued", "running", "finished", "failed", "interrupted"]
"""queued: waiting for a slot of its key; running; finished (see end_reason);
failed: tinyact or its infrastructure failed; interrupted: the server stopped
while it ran and was configured not to resume it."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- runs


class RunRequest(_Wire):
    """``POST /v1/runs``: one task for the agent."""

    task: str = Field(min_length=1, max_length=32_000)
    """What the agent should do."""
    model: str | None = None
    """The served model's name, or "tinyact" (an alias of it); omitted means the one the server serves."""
    samples: int | None = Field(default=None, ge=1, le=32)
    """k candidate actions per step (self-consistency); the server caps it."""
    max_steps: int | None = Field(default=None, ge=1, le=100)
    """Action steps before the agent must answer; the server caps it."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature; default 0 for samples=1, 0.4 otherwise."""
    tools: list[str] | None = None
    """Names of server tools the run may use (``GET /v1/tools``); omitted means all."""
    stream: bool = False
    """Server-Sent Events: ``run``, one ``step`` per step, then ``final`` (or ``error``)."""
    tokens: bool = False
    """With ``stream``: also ``token`` events, the model's text as it is generated
    (``{"step", "text", "candidate", "of"}``; with samples > 1 candidate 0's, which may lose the vote)."""
    background: bool = False
    """Return 202 with the run's id at once; poll ``GET /v1/runs/{id}``."""
    conversation: str | None = Field(default=None, min_length=1, max_length=200)
    """Continue (or start) this conversation: the run sees its earlier turns and their variables."""

    @field_validator("task")
    @classmethod
    def _task_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("task must not be blank")
        return v

    @model_validator(mode="after")
    def _one_mode(self) -> RunRequest:
        if self.stream and self.background:
            raise ValueError("stream and background cannot both be true")
        if self.samples is not None and self.samples > 1 and self.temperature == 0:
            raise ValueError("samples > 1 needs temperature > 0 (k greedy samples are identical)")
        return self

    def to_overrides(self) -> dict[str, Any]:
        """The ``AgentConfig`` fields this request sets."""
        fields = {"samples": self.samples, "max_steps": self.max_steps, "temperature": self.temperature}
        return {k: v for k, v in fields.items() if v is not None}


class RunInfo(_Wire):
    """A run as stored: status, steps so far, and the answer once finished."""

    id: str
    status: RunStatus
    task: str
    model: str
    created_at: float
    finished_at: float | None = None
    end_reason: str | None = None
    """final_answer, max_steps, time_budget, token_budget, cancelled, ..."""
    answer: Any = None
    error: str | None = None
    steps: list[Step] = Field(default_factory=list)
    trajectory: Trajectory | None = None
    """The whole run (settings, usage, timings) once it finished."""


class RunSummary(_Wire):
    id: str
    status: RunStatus
    task: str
    created_at: float
    finished_at: float | None = None
    end_reason: str | None = None
    answer: Any = None
    steps: int = 0


class RunList(_Wire):
    """``GET /v1/runs``: newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    data: list[RunSummary]
    next_cursor: str | None = None


class RunEvent(_Wire):
    """First SSE event: the run's id (to cancel it) and where it stands."""

    id: str
    status: RunStatus


class FinalEvent(_Wire):
    """Last SSE event of a run that ended."""

    id: str
    status: RunStatus
    answer: Any = None
    end_reason: str | None = None
    steps: int = 0
    seconds: float = 0.0
    error: str | None = None


# ---------------------------------------------------------------- service


class Health(_Wire):
    status: Literal["ok"] = "ok"


class Readiness(_Wire):
    ready: bool
    model: str | None = None
    engine: str | None = None
    detail: str | None = None


class ErrorInfo(_Wire):
    message: str
    type: str
    """invalid_request_error, authentication_error, rate_limit_error, not_found_error, ..."""
    param: str | None = None
    """The offending field, e.g. "body.samples"."""
    code: str | None = None


class ErrorResponse(_Wire):
    """Every 4xx/5xx body (the OpenAI error shape); 422s also carry pydantic's ``detail``."""

    error: ErrorInfo
    detail: list[dict[str, Any]] | None = None


# ---------------------------------------------- OpenAI-compatible facade


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: accepted, unused

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(p.get("text", "") for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``: the last user message is the task, the
    messages before it the conversation so far (see ``serve/conversations.py``).

    Unknown OpenAI fields are accepted and ignored, so the ``openai`` client
    works unchanged; sampling is the agent's (see ``samples``/``temperature``).
    """

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    n: int = Field(default=1, ge=1, le=1)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    user: str | None = None
    # --- tinyact extensions (pass with the openai client's extra_body=) ---
    samples: int | None = Field(default=None, ge=1, le=32)
    max_steps: int | None = Field(default=None, ge=1, le=100)
    tools: list[str] | None = None
    """Server tool names, as in ``RunRequest.tools`` (OpenAI function tools are not supported)."""
    stream_tokens: Literal["reasoning", "content", "none"] = "reasoning"
    """With ``stream``: where the model's text goes while it is generated: ``delta.reasoning_content``
    (the convention of reasoning models; ``content`` stays the answer alone), ``delta.content``
    (then the answer follows a blank line), or nowhere. With samples > 1 it is candidate 0's text."""
    conversation: str | None = Field(default=None, min_length=1, max_length=200)
    """The conversation this turn belongs to (``tinyact.conversation`` of an earlier response).
    Omitted: the history (the messages before the last user message) finds it."""

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, v: Any) -> Any:
        if isinstance(v, list) and any(not isinstance(t, str) for t in v):
            raise ValueError("tools must be a list of server tool names (OpenAI function tools are not supported)")
        return v

    @model_validator(mode="after")
    def _has_user_message(self) -> ChatCompletionRequest:
        if not any(m.role == "user" and m.text().strip() for m in self.messages):
            raise ValueError("messages must contain a non-empty user message (it is the task)")
        return self

    def last_user(self) -> int:
        """The index of the last non-empty user message: the task; what precedes it is the history."""
        return max(i for i, m in enumerate(self.messages) if m.role == "user" and m.text().strip())

    def to_run_request(self) -> RunRequest:
        return RunRequest(
            task=self.messages[self.last_user()].text(), model=self.model, samples=self.samples,
            max_steps=self.max_steps, temperature=self.temperature, tools=self.tools, conversation=self.conversation,
            tokens=self.stream and self.stream_tokens != "none",
        )


class ChatUsage(_Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, usage: Usage) -> ChatUsage:
        return cls(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                   total_tokens=usage.total_tokens)


class ChatResponseMessage(_Wire):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(_Wire):
    index: int = 0
    message: ChatResponseMessage
    finish_reason: Literal["stop", "length"] = "stop"


class TinyactExtension(_Wire):
    """tinyact's extension field (not in the OpenAI spec): the run behind the answer."""

    run_id: str
    conversation: str | None = None
    """Send it back as ``conversation`` to continue this thread (or resend the whole chat)."""
    end_reason: str | None = None
    answer: Any = None
    """The answer as a JSON value (``content`` is its text)."""
    steps: list[Step] = Field(default_factory=list)
    token: dict[str, int] | None = None
    """On a chunk carrying generated text: its step, and its candidate of how many (``of``)."""


class ChatCompletion(_Wire):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    tinyact: TinyactExtension


class ChatDelta(_Wire):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    """The agent's text while it is generated (thoughts, code); not in the OpenAI spec (vLLM's and
    DeepSeek's reasoning field)."""


class ChatChunkChoice(_Wire):
    index: int = 0
    delta: ChatDelta
    finish_reason: Literal["stop", "length"] | None = None


class ChatChunk(_Wire):
    """One streamed chunk; steps travel in ``tinyact.steps`` with an empty delta."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    tinyact: TinyactExtension | None = None


class ModelCard(_Wire):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "tinyact"


class ModelList(_Wire):
    object: Literal["list"] = "list"
    data: list[ModelCard]
