"""Admission control: per-key concurrency with a bounded queue, and a body-size limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BodyLimit", "KeyLimiter", "QueueFull"]


class QueueFull(Exception):
    """The key has ``max_active`` runs executing and ``max_queued`` waiting."""


@dataclass
class _Key:
    active: int = 0
    waiting: int = 0


class KeyLimiter:
    """At most ``max_active`` runs per key execute; ``max_queued`` more may wait.

    ``admit`` is called when a request arrives (it never blocks: beyond the
    queue it raises ``QueueFull``); ``acquire`` is called by the run's thread and
    blocks until a slot frees up (or ``cancelled()`` turns true); ``release``
    gives the slot back.
    """

    def __init__(self, max_active: int, max_queued: int) -> None:
        self.max_active = max_active
        self.max_queued = max_queued
        self._keys: dict[str, _Key] = {}
        self._cond = threading.Condition()

    def admit(self, key: str, *, force: bool = False) -> None:
        """Count a new run as waiting; ``force`` skips the bound (runs resumed at start-up)."""
        with self._cond:
            k = self._keys.setdefault(key, _Key())
            if not force and k.active + k.waiting >= self.max_active + self.max_queued:
                raise QueueFull(key)
            k.waiting += 1

    def acquire(self, key: str, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Wait for a slot; False (and no slot held) when cancelled while waiting."""
        with self._cond:
            k = self._keys[key]
            while k.active >= self.max_active and not cancelled():
                self._cond.wait(0.1)
            k.waiting -= 1
            if cancelled():
                self._cond.notify_all()
                return False
            k.active += 1
            return True

    def release(self, key: str) -> None:
        with self._cond:
            self._keys[key].active -= 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return sum(k.waiting for k in self._keys.values())

    @property
    def active(self) -> int:
        with self._cond:
            return sum(k.active for k in self._keys.values())


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
