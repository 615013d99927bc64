"""SandboxPool: sandboxes started ahead of the runs that will use them.

Starting a sandbox (a bwrap'd Python worker) is most of an API run's cost
around the agent. The pool keeps ``size`` fresh, never-used sessions ready per
tool set; a run takes one (or opens one itself when the pool is empty) and
background threads (``FILLERS``, so that starts overlap) start its
replacement. By default every run gets its own new sandbox, closed when the
run ends: nothing is shared or reused between runs.

``reuse=True`` (``tinyact serve --sandbox-reuse``, off by default) trades some
isolation for speed: a sandbox serves several runs *of the same API key*, one
at a time. Its first session is a template that runs no code; a run gets a
fork of it, and when the run's session closes, a background thread resets
the sandbox (``Session.reset``: every other process killed, the files the code
could write and its IPC objects wiped) and keeps it for the key's next run.
What that does and does not isolate is in docs/deploy.md.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["RUN_KEY", "SandboxPool"]

log = logging.getLogger("tinyact.serve")

FILLERS = 2
"""Threads starting and resetting sandboxes (a start mostly waits for the new worker)."""

RUN_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("tinyact_run_key", default=None)
"""The API key whose run is opening a sandbox (set by the run's thread); reuse stays within it."""


class SandboxPool:
    """``size`` ready sessions per tool set; ``open(tools=...)`` is an ``Agent`` sandbox opener.

    Args:
        backend: ``auto`` | ``process`` | ``docker`` (as ``open_session``).
        size: sessions kept ready per tool set.
        reuse: reuse a sandbox between runs of the same key after a reset
            (process backend with bwrap or unshare; others start fresh ones).
        idle_s: with ``reuse``, how long an idle sandbox is kept for its key.
        max_idle: with ``reuse``, most idle sandboxes kept (all keys together).
    """

    def __init__(self, backend: str = "auto", size: int = 4, *, reuse: bool = False, idle_s: float = 60.0,
                 max_idle: int | None = None) -> None:
        self.backend = backend
        self.size = size
        self.reuse = reuse and backend in ("auto", "process")
        if reuse and not self.reuse:
            log.warning("sandbox reuse needs the process backend; every run gets a fresh %s sandbox", backend)
        self.idle_s = idle_s
        self.max_idle = max_idle if max_idle is not None else max(4 * size, 8)
        self._ready: dict[tuple, list[Any]] = {}
        self._tools: dict[tuple, dict[str, Callable[..., Any]]] = {}
        self._idle: dict[tuple, list[tuple[float, Any]]] = {}  # (key, tools) -> [(since, template)]
        self._dirty: list[tuple[tuple, Any]] = []  # templates whose run ended, to reset
        self._starting: dict[tuple, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.hits = 0
        self.misses = 0
        self.reused = 0
        self._threads = [threading.Thread(target=self._work, name=f"sandbox-pool-{i}", daemon=True)
                         for i in range(FILLERS)]
        # bwrap --die-with-parent (PR_SET_PDEATHSIG) fires when the *thread* that started it ends:
        # a sandbox kept past its run must not be started by the run's thread
        self._starter = ThreadPoolExecutor(FILLERS, thread_name_prefix="sandbox-start")
        for t in self._threads:
            t.start()

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
        owner = RUN_KEY.get() if self.reuse else None
        template = None
        with self._cond:
            self._tools.setdefault(key, dict(tools))
            if owner is not None:
                idle = self._idle.get((owner, key))
                if idle:
                    template = idle.pop()[1]
            ready = self._ready.setdefault(key, [])
            session = ready.pop() if ready and template is None else None
            self._cond.notify_all()  # start a replacement
        if template is not None:
            self.reused += 1
        elif session is not None and not session.closed:
            self.hits += 1
            template = session if owner is not None else None
        else:
            self.misses += 1
            if owner is None:
                session = self._start(tools)
            else:  # kept after this run: started by a thread that outlives it (see _starter)
                session = self._starter.submit(self._start, tools).result()
            template = session if owner is not None else None
        if template is None:
            return session
        return self._fork(owner, key, template, tools)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = [s for ready in self._ready.values() for s in ready]
            idle += [s for kept in self._idle.values() for _, s in kept] + [s for _, s in self._dirty]
            self._ready.clear()
            self._idle.clear()
            self._dirty.clear()
            self._cond.notify_all()
        for s in idle:
            s.close()
        for t in self._threads:
            t.join(10)
        self._starter.shutdown(wait=True)

    def __len__(self) -> int:
        """Sessions ready for a run that has none (kept templates of a key not counted)."""
        with self._cond:
            return sum(len(r) for r in self._ready.values())

    @property
    def kept(self) -> int:
        """Sandboxes kept for reuse (idle or being reset)."""
        with self._cond:
            return sum(len(k) for k in self._idle.values()) + len(self._dirty)

    def _start(self, tools: Mapping[str, Callable[..., Any]]) -> Any:
        from tinyact.sandbox import open_session

        if self.reuse:
            try:
                return open_session(backend=self.backend, tools=tools, reusable=True)  # type: ignore[arg-type]
            except Exception as e:  # noqa: BLE001 - e.g. isolation "none": fresh sandboxes then
                log.warning("no reusable sandbox here (%s); every run gets a fresh one", e)
                self.reuse = False
        return open_session(backend=self.backend, tools=tools)  # type: ignore[arg-type]

    def _fork(self, owner: str, key: tuple, template: Any, tools: Mapping[str, Callable[..., Any]]) -> Any:
        """The run's session: a fork of ``template``, which goes back to ``owner`` once it closes."""
        if not getattr(template._sandbox, "reusable", False):  # not a reusable sandbox: it is the run's
            return template
        try:
            session = template.fork()
        except Exception:  # noqa: BLE001 - a broken template: the run gets a fresh sandbox of its own
            log.exception("forking a kept sandbox failed")
            template.close()
            return self._starter.submit(self._start, tools).result()

        def hand_back() -> None:
            with self._cond:
                if self._closed:
                    closing = True
                else:
                    closing = False
                    self._dirty.append(((owner, key), template))
                    self._cond.notify_all()
            if closing:
                template.close()

        session.on_close = hand_back
        return session

    def _work(self) -> None:
        """Reset the templates of ended runs first, then fill the ready lists, then expire idle ones."""
        while True:
            job = None
            expired: list[Any] = []
            with self._cond:
                while not self._closed:
                    expired = self._expire()
                    if expired:
                        break
                    if self._dirty:
                        job = ("reset", *self._dirty.pop(0))
                        break
                    key = next((k for k, r in self._ready.items() if len(r) + self._starting.get(k, 0) < self.size),
                               None)
                    if key is not None:
                        self._starting[key] = self._starting.get(key, 0) + 1
                        job = ("start", key, self._tools[key])
                        break
                    self._cond.wait(self.idle_s / 4 if self.reuse else None)
                if self._closed:
                    return
            for s in expired:
                s.close()
            if job is None:
                continue
            if job[0] == "reset":
                self._reset(job[1], job[2])
            else:
                self._fill(job[1], job[2])

    def _reset(self, owner_key: tuple, template: Any) -> None:
        try:
            template.reset()
        except Exception as e:  # noqa: BLE001 - not reusable any more: it ends, the key gets a fresh one
            log.warning("a kept sandbox could not be reset (%s); closed", e)
            template.close()
            return
        with self._cond:
            if self._closed:
                template.close()
                return
            self._idle.setdefault(owner_key, []).append((time.monotonic(), template))
            extra = self._expire(over=self.max_idle)
            self._cond.notify_all()
        for s in extra:
            s.close()

    def _expire(self, over: int | None = None) -> list[Any]:
        """Under the lock: remove idle templates kept longer than ``idle_s`` (or the oldest beyond
        ``over``); the caller closes them outside it."""
        out = []
        now = time.monotonic()
        for k in list(self._idle):
            keep = [(t, s) for t, s in self._idle[k] if now - t < self.idle_s]
            out += [s for t, s in self._idle[k] if now - t >= self.idle_s]
            if keep:
                self._idle[k] = keep
            else:
                del self._idle[k]
        if over is not None:
            everything = sorted(((t, k, s) for k, kept in self._idle.items() for t, s in kept), key=lambda e: e[0])
            for t, k, s in everything[: max(0, len(everything) - over)]:
                self._idle[k].remove((t, s))
                out.append(s)
        return out

    def _fill(self, key: tuple, tools: Mapping[str, Callable[..., Any]]) -> None:
        try:
            session = self._start(tools)
        except Exception:
            log.exception("starting a pooled sandbox failed")
            with self._cond:
                self._starting[key] -= 1
                self._cond.wait(1.0)
            return
        with self._cond:
            self._starting[key] -= 1
            if self._closed:
                session.close()
                return
            self._ready[key].append(session)


def _key(tools: Mapping[str, Callable[..., Any]]) -> tuple:
    return tuple(sorted((name, id(fn)) for name, fn in tools.items()))
