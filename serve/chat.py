"""The OpenAI-compatible chat facade over ``RunService``: one run per completion.

The last user message is the task and the messages before it the conversation
so far: a conversation is one agent thread (``serve/conversations.py``), so a
later turn sees the earlier ones and their variables. The answer is the
assistant's content; the steps and the conversation id travel in the
``tinyact`` extension field (in chunks too, when streaming).
"""

from __future__ import annotations

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
from tinyact.serve.conversations import Turn, answer_text, transcript_of
from tinyact.serve.runs import TERMINAL
from tinyact.schema import Step

if TYPE_CHECKING:
    from tinyact.serve.service import RunService

__all__ = ["chat_chunks", "chat_completion"]


def _turn(service: RunService, request: ChatCompletionRequest, key_id: str) -> Turn:
    assert service.conversations is not None
    prior = transcript_of(request.messages[: request.last_user()])
    return service.conversations.resolve(key_id, request.conversation, prior)


async def chat_completion(service: RunService, request: ChatCompletionRequest, key_id: str) -> ChatCompletion:
    turn = _turn(service, request, key_id)
    info = await service.run(request.to_run_request(), key_id, turn)
    usage = info.trajectory.usage if info.trajectory else None
    return ChatCompletion(
        id="chatcmpl-" + info.id.removeprefix("run_"), created=int(info.created_at), model=service.model_name,
        choices=[ChatChoice(message=ChatResponseMessage(content=answer_text(info.answer)),
                            finish_reason=_finish(info.end_reason))],
        usage=ChatUsage.of(usage) if usage else ChatUsage(),
        tinyact=TinyactExtension(run_id=info.id, conversation=turn.id, end_reason=info.end_reason, answer=info.answer,
                                 steps=info.steps),
    )


async def chat_chunks(service: RunService, request: ChatCompletionRequest, key_id: str) -> AsyncIterator[ChatChunk]:
    """A role chunk (after the run was admitted), one chunk per step, the answer, the end."""
    turn = _turn(service, request, key_id)
    handle = service.submit(request.to_run_request(), key_id, turn)
    base = {"id": "chatcmpl-" + handle.id.removeprefix("run_"), "created": int(handle.created_at),
            "model": service.model_name}
    yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta(role="assistant", content=""))],
                    tinyact=TinyactExtension(run_id=handle.id, conversation=turn.id))
    mode = request.stream_tokens
    streamed = False
    async for kind, data in service.events(handle):
        if kind == "token":
            streamed = True
            delta = ChatDelta(content=data["text"]) if mode == "content" else ChatDelta(reasoning_content=data["text"])
            token = {"step": data["step"], "candidate": data["candidate"], "of": data["of"]}
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=delta)],
                            tinyact=TinyactExtension(run_id=handle.id, conversation=turn.id, token=token))
        elif kind == "step":
            ext = TinyactExtension(run_id=handle.id, conversation=turn.id, steps=[Step.model_validate(data)])
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta())], tinyact=ext)
        elif kind in TERMINAL:
            final = FinalEvent.model_validate(data)
            ext = TinyactExtension(run_id=handle.id, conversation=turn.id, end_reason=final.end_reason,
                                   answer=final.answer)
            text = answer_text(final.answer)
            if mode == "content" and streamed:
                text = "\n\n" + text
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta(content=text))])
            yield ChatChunk(**base, choices=[ChatChunkChoice(delta=ChatDelta(), finish_reason=_finish(final.end_reason))],
                            tinyact=ext)


def _finish(end_reason: str | None) -> Any:
    return "stop" if end_reason in ("final_answer", "cancelled", None) else "length"
