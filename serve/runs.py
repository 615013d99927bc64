"""RunHandle: a live run's cancel switch, agent and events, fanned out to asyncio readers."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tinyact.serve.protocol import RunRequest

if TYPE_CHECKING:
    from tinyact.agents import Agent
    from tinyact.serve.conversations import Turn

__all__ = ["Event", "RunHandle", "TERMINAL"]

Event = tuple[str, dict]
"""(kind, data): kind is "run", "token", "step", "final" or "error"."""
TERMINAL = ("final", "error")


@dataclass
class RunHandle:
    """A live run: its cancel switch, its agent, and its events so far."""

    id: str
    key_id: str
    request: RunRequest
    created_at: float
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    turn: Turn | None = None
    """The conversation turn this run is (None: a run on its own)."""
    running: bool = False
    """Holds one of its key's slots (False while queued)."""
    lost: bool = False
    """Another replica took the run over (this one's lease expired): stop without writing."""
    agent: Agent | None = None
    thread: threading.Thread | None = None
    events: list[Event] = field(default_factory=list)
    _readers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, kind: str, data: dict, *, keep: bool = True) -> None:
        """Send an event to every reader; ``keep=False`` (tokens): to the readers there now only."""
        with self._lock:
            if keep:
                self.events.append((kind, data))
            readers = list(self._readers)
        for loop, queue in readers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, data))
            except RuntimeError:  # that reader's loop is gone
                pass

    def subscribe(self) -> asyncio.Queue:
        """A queue with every event so far, then each new one (call from the event loop)."""
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            for event in self.events:
                queue.put_nowait(event)
            self._readers.append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._readers = [(lp, q) for lp, q in self._readers if q is not queue]
