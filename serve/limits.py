"""Admission control: the body-size limit, and ``QueueFull`` (per-key limits are counted in the runs table)."""

from __future__ import annotations

import json
from collections.abc import Callable

__all__ = ["BodyLimit", "QueueFull"]


class QueueFull(Exception):
    """The key has ``max_active`` runs executing and ``max_queued`` waiting."""


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, declared or streamed.

    The body is read (at most ``max_bytes`` + one chunk) before the app runs, so
    an oversize chunked upload is refused before any route sees it.
    """

    def __init__(self, app, max_bytes: int, on_reject: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks = []
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._reject(send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        self.on_reject()
        body = json.dumps({"error": {
            "message": f"request body is larger than {self.max_bytes} bytes", "type": "invalid_request_error",
            "param": None, "code": "request_too_large",
        }}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
