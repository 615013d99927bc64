"""The OpenAI-compatible chat facade over ``RunService``: one run per completion.

The last user message is the task; the answer is the assistant's content; the
steps travel in the ``tinyact`` extension field (in chunks too, when streaming).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tinyact.serve.protocol import (
    ChatChoice,
    ChatChunk,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatDelta,
    ChatResponseMessage,
    ChatUsage,
    FinalEvent,
    TinyactExtension,
)
from tinyact.serve.runs import TERMINAL
from tinyact.schema import Step

if TYPE_CHECKING:
    from tinyact.serve.service import RunService

__all__ = ["chat_chunks", "chat_completion"]


async def chat_completion(service: RunService, request: ChatCompletionRequest, key_id: str) -> ChatCompletion:
    info = await service.run(request.to_run_request(), key_id)
    usage = info.trajectory.usage if info.trajectory else None
    return ChatCompletion(
        id="chatcmpl-" + info.id.removeprefix("run_"), created=int(info.created_at), model=service.model_name,
        choices=[ChatChoice(message=ChatResponseMessage(content=_text(info.answer)),
                            finish_reason=_finish(info.end_reason))],
        usage=ChatUsage.of(usage) if usage else ChatUsage(),
        tinyact=TinyactExtension(run_id=info.id, end_reason=info.end_reason, answer=info.answer, steps=info.steps),
    )


async def chat_chunks(service: RunService, request: ChatCompletionRequest, key_id: str) -> AsyncIterator[ChatChunk]:
    """A role chunk (after the run was admitted), one chunk per step, the answer, the end."""
    handle = service.submit(request.to_run_request(), key_id)
    base = {"id": "chatcmpl-" + handle.id.removeprefix("run_"), "created": int(handle.created_at),
            "model": service.model_name}
    yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))])
    async for kind, data in service.events(handle):
        if kind == "step":
            ext = TinyactExtension(run_id=handle.id, steps=[Step.model_validate(data)])
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta())], tinyact=ext)
        elif kind in TERMINAL:
            final = FinalEvent.model_validate(data)
            ext = TinyactExtension(run_id=handle.id, end_reason=final.end_reason, answer=final.answer)
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta(content=_text(final.answer)))])
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta(), finish_reason=_finish(final.end_reason))],
                            tinyact=ext)


def _text(answer: Any) -> str:
    if answer is None:
        return ""
    return answer if isinstance(answer, str) else json.dumps(answer)


def _finish(end_reason: str | None) -> Any:
    return "stop" if end_reason in ("final_answer", "cancelled", None) else "length"
