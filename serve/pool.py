"""SandboxPool: sandboxes started ahead of the runs that will use them.

Starting a sandbox (a bwrap'd Python worker) is most of an API run's cost
around the agent. The pool keeps ``size`` fresh, never-used sessions ready per
tool set; a run takes one (or opens one itself when the pool is empty) and a
background thread starts its replacement. Every run still gets its own new
process, closed when the run ends: nothing is shared or reused between runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SandboxPool"]

log = logging.getLogger("tinyact.serve")


class SandboxPool:
    """``size`` ready sessions per tool set; ``open(tools=...)`` is an ``Agent`` sandbox opener.

    Args:
        backend: ``auto`` | ``process`` | ``docker`` (as ``open_session``).
        size: sessions kept ready per tool set.
    """

    def __init__(self, backend: str = "auto", size: int = 4) -> None:
        self.backend = backend
        self.size = size
        self._ready: dict[tuple, list[Any]] = {}
        self._tools: dict[tuple, dict[str, Callable[..., Any]]] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.hits = 0
        self.misses = 0
        self._thread = threading.Thread(target=self._fill, name="sandbox-pool", daemon=True)
        self._thread.start()

    def prime(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        """Start filling for ``tools`` now, before the first run asks."""
        key = _key(tools)
        with self._cond:
            self._tools.setdefault(key, dict(tools))
            self._ready.setdefault(key, [])
            self._cond.notify_all()

    def open(self, tools: Mapping[str, Callable[..., Any]]) -> Any:
        """A started session with ``tools`` (from the pool when one is ready)."""
        key = _key(tools)
        with self._cond:
            self._tools.setdefault(key, dict(tools))
            ready = self._ready.setdefault(key, [])
            session = ready.pop() if ready else None
            self._cond.notify_all()  # start a replacement
        if session is not None and not session.closed:
            self.hits += 1
            return session
        self.misses += 1
        return self._start(tools)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = [s for ready in self._ready.values() for s in ready]
            self._ready.clear()
            self._cond.notify_all()
        for s in idle:
            s.close()
        self._thread.join(10)

    def __len__(self) -> int:
        with self._cond:
            return sum(len(r) for r in self._ready.values())

    def _start(self, tools: Mapping[str, Callable[..., Any]]) -> Any:
        from tinyact.sandbox import open_session

        return open_session(backend=self.backend, tools=tools)  # type: ignore[arg-type]

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not any(len(r) < self.size for r in self._ready.values()):
                    self._cond.wait()
                if self._closed:
                    return
                key = next(k for k, r in self._ready.items() if len(r) < self.size)
                tools = self._tools[key]
            try:
                session = self._start(tools)
            except Exception:
                log.exception("starting a pooled sandbox failed")
                with self._cond:
                    self._cond.wait(1.0)
                continue
            with self._cond:
                if self._closed:
                    session.close()
                    return
                self._ready[key].append(session)


def _key(tools: Mapping[str, Callable[..., Any]]) -> tuple:
    return tuple(sorted((name, id(fn)) for name, fn in tools.items()))
