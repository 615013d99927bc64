"""Host side of a sandbox session: execute, tool calls, fork/adopt.

A ``Session`` talks to one holder process inside a sandbox (see
``worker/worker.py`` for the other end) over a ``Channel``
(``worker/protocol.py``: the same class on every side and backend), whose
frames the host bounds in size and nesting: anything malformed means a dead
sandbox (``SandboxError`` WORKER_DIED), never an exception of another kind. Sessions made by ``fork()`` share the sandbox (its
processes, namespaces or container) with their parent; the sandbox ends when
its last session closes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tinyact.errors import SandboxError, SandboxErrorCode
from tinyact.sandbox.limits import Limits
from tinyact.sandbox.worker.protocol import Channel, ProtocolError
from tinyact.schema import ExecError, ExecResult

__all__ = ["Channel", "Session"]

log = logging.getLogger(__name__)

GRACE_S = 5.0
"""How long past an execute's own timeout the host waits before declaring the worker dead
(time spent in host tools does not count)."""


class Sandbox(Protocol):
    """What a backend provides to the sessions living in one sandbox."""

    backend: str
    isolation: str

    def acquire(self) -> None: ...

    def release(self) -> None:
        """One session fewer; the last one ends the sandbox."""

    def accept_fork(self, chan: Channel, deadline: float, n: int) -> list[tuple[Channel, dict[str, Any]]]:
        """Read the worker's answer to a "fork" request: a channel to each new holder."""


ToolFn = Callable[..., Any]


class RefCounted:
    """A sandbox shared by its sessions: the last ``release`` calls ``terminate``.

    Subclasses set ``_refs`` and ``_lock`` and define ``terminate``.
    """

    _refs: int
    _lock: threading.Lock

    def acquire(self) -> None:
        with self._lock:
            self._refs += 1

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            last = self._refs <= 0
        if last:
            self.terminate()

    def terminate(self) -> None:
        raise NotImplementedError


class Session:
    """One sandboxed Python session: persistent globals, forkable.

    ``with open_session() as s: s.execute("x = 1"); s.execute("x + 1").value == "2"``

    Thread-safety: one call at a time per session (a lock serializes them);
    different sessions (forks included) run in parallel.
    """

    def __init__(
        self,
        chan: Channel,
        sandbox: Sandbox,
        *,
        limits: Limits,
        tools: Mapping[str, ToolFn] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self._chan: Channel | None = chan
        self._sandbox = sandbox
        self.limits = limits
        self.tools: dict[str, ToolFn] = dict(tools or {})
        self.info: dict[str, Any] = dict(info or {})
        self._lock = threading.Lock()
        self._next_id = 0
        self.on_close: Callable[[], None] | None = None
        """Called once when the session ends (closed, or found dead): e.g. a pool's hand-back."""

    # ------------------------------------------------------------------ properties
    @property
    def backend(self) -> str:
        return self._sandbox.backend

    @property
    def isolation(self) -> str:
        """"bwrap", "unshare", "none" (process backend) or "docker"."""
        return self._sandbox.isolation

    @property
    def closed(self) -> bool:
        return self._chan is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Session backend={self.backend} isolation={self.isolation} {state}>"

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if self._chan is not None:
                self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ API
    def execute(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run `code` with this session's globals; errors in the code are in the result.

        Raises SandboxError when the sandbox itself fails (the worker died, the
        session is closed).
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be str, got {type(code).__name__}")
        limit = float(timeout if timeout is not None else self.limits.timeout_s)
        if not limit > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        with self._lock:
            chan = self._require_open()
            self._next_id += 1
            xid = self._next_id
            t0 = time.perf_counter()
            deadline = time.monotonic() + limit + GRACE_S
            try:
                chan.send({"op": "exec", "id": xid, "code": code, "timeout": limit})
                while True:
                    msg, _ = chan.recv(deadline)
                    op = msg.get("op")
                    if op == "tool":
                        t_tool = time.monotonic()
                        reply = self._run_tool(msg)
                        deadline += time.monotonic() - t_tool  # a slow host tool is not a dead worker
                        chan.send(reply)
                    elif op == "result" and msg.get("id") == xid:
                        return self._to_result(msg, time.perf_counter() - t0)
                    # anything else (a late reply of a killed executor) is dropped
            except (EOFError, OSError, ProtocolError) as e:
                detail = _log_tail(self._sandbox)
                self._die()
                what = f"it broke the protocol: {e}" if isinstance(e, ProtocolError) else type(e).__name__
                raise SandboxError(
                    f"the sandbox worker died during execute ({what}); open a new session"
                    + (f"\nworker log:\n{detail}" if detail else ""),
                    code=SandboxErrorCode.WORKER_DIED,
                    retryable=True,
                ) from None
            except TimeoutError:
                self._die()
                raise SandboxError(
                    f"the sandbox worker did not answer within {limit + GRACE_S:g} s; the session was ended",
                    code=SandboxErrorCode.WORKER_DIED,
                    retryable=True,
                ) from None

    def alive(self, timeout: float = 5.0) -> bool:
        """Whether the session answers a ping within `timeout` seconds (False ends it)."""
        with self._lock:
            chan = self._chan
            if chan is None:
                return False
            try:
                self._ask(chan, "ping", "pong", timeout)
                return True
            except (EOFError, OSError, ProtocolError, TimeoutError):
                self._die()
                return False

    def _ask(self, chan: Channel, op: str, reply: str, timeout: float) -> dict[str, Any]:
        """Send ``op`` and wait for its ``reply`` (same id), skipping stale frames; call under the lock."""
        self._next_id += 1
        chan.send({"op": op, "id": self._next_id})
        deadline = time.monotonic() + timeout
        while True:
            msg, _ = chan.recv(deadline)
            if msg.get("op") == reply and msg.get("id") == self._next_id:
                return msg

    def fork(self) -> Session:
        """An independent copy of this session (globals and scratch files), in milliseconds."""
        return self.fork_many(1)[0]

    def fork_many(self, n: int) -> list[Session]:
        """`n` independent copies of this session, made in one request (cheaper than n fork() calls)."""
        if not isinstance(n, int) or not 1 <= n <= 64:
            raise ValueError(f"n must be an int in [1, 64], got {n!r}")
        with self._lock:
            chan = self._require_open()
            self._next_id += 1
            try:
                chan.send({"op": "fork", "id": self._next_id, "n": n})
                made = self._sandbox.accept_fork(chan, time.monotonic() + 30, n)
            except (EOFError, OSError, TimeoutError, ProtocolError) as e:
                self._die()
                raise SandboxError(
                    f"fork failed: the sandbox worker died ({type(e).__name__})",
                    code=SandboxErrorCode.WORKER_DIED,
                    retryable=True,
                ) from None
            out = []
            for new_chan, info in made:
                self._sandbox.acquire()
                out.append(Session(new_chan, self._sandbox, limits=self.limits, tools=self.tools, info=info))
        if len(out) < n:
            for f in out:
                f.close()
            raise SandboxError(
                f"only {len(out)} of {n} forks could be made (process limit {self.limits.processes}: "
                "each session uses 2 processes; raise Limits.processes or close sessions)",
                code=SandboxErrorCode.PROTOCOL,
                retryable=True,
            )
        return out

    def adopt(self, fork: Session) -> None:
        """Make `fork` (a fork of this session) this session's state; the old state ends.

        `fork` is closed afterwards: keep using this object.
        """
        if fork is self:
            return
        if fork._sandbox is not self._sandbox:
            raise ValueError("adopt() takes a fork of this session (same sandbox)")
        with self._lock, fork._lock:
            new = fork._chan
            if new is None:
                raise SandboxError("cannot adopt a closed session", code=SandboxErrorCode.CLOSED)
            old, self._chan, fork._chan = self._chan, new, None
            self.info = fork.info
        if old is not None:
            old.close()
            self._sandbox.release()  # the fork's reference now belongs to self
        else:
            pass  # self was closed: the fork's reference carries over as it is

    def reset(self, timeout: float = 10.0) -> None:
        """Put a reusable sandbox back as it started (call it on the template session, once
        its forks are closed): every other process killed, the files the code could
        write and its IPC objects wiped. SandboxError when that failed (then close it)."""
        with self._lock:
            chan = self._require_open()
            try:
                msg = self._ask(chan, "reset", "reset", timeout)
            except (EOFError, OSError, ProtocolError, TimeoutError) as e:
                self._die()
                raise SandboxError(f"the sandbox died during reset ({type(e).__name__})",
                                   code=SandboxErrorCode.WORKER_DIED, retryable=True) from None
        if not msg.get("ok"):
            raise SandboxError(f"the sandbox could not be reset: {msg.get('error')}", code=SandboxErrorCode.PROTOCOL)

    def close(self) -> None:
        """End this session (its holder process exits); idempotent."""
        chan, self._chan = self._chan, None
        if chan is not None:
            chan.close()
            self._sandbox.release()
            self._closed()

    def _closed(self) -> None:
        hook, self.on_close = self.on_close, None
        if hook is not None:
            try:
                hook()
            except Exception:  # noqa: BLE001 - a hook's failure is not the session's
                log.exception("a session's on_close hook failed")

    # ------------------------------------------------------------------ internals
    def _require_open(self) -> Channel:
        if self._chan is None:
            raise SandboxError("the session is closed", code=SandboxErrorCode.CLOSED)
        return self._chan

    def _die(self) -> None:
        chan, self._chan = self._chan, None
        if chan is not None:
            chan.close()
            self._sandbox.release()
            self._closed()

    def _run_tool(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = msg.get("name")
        fn = self.tools.get(name) if isinstance(name, str) else None
        if fn is None:
            return {"op": "tool_result", "ok": False, "error": f"unknown tool {name!r}"}
        args = msg.get("args") or []
        kwargs = msg.get("kwargs") or {}
        try:
            value = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - a tool's failure goes back to the code
            return {"op": "tool_result", "ok": False, "error": f"{name} failed: {type(e).__name__}: {e}"}
        try:
            value = _jsonable(value)
            json.dumps(value)
        except (TypeError, ValueError) as e:
            return {"op": "tool_result", "ok": False, "error": f"{name} returned a non-JSON value: {e}"}
        return {"op": "tool_result", "ok": True, "value": value}

    @staticmethod
    def _to_result(msg: dict[str, Any], host_seconds: float) -> ExecResult:
        err = msg.get("error")
        error = None
        if isinstance(err, dict):
            error = ExecError(
                type=str(err.get("type", "Error")),
                message=str(err.get("message", "")),
                traceback=str(err.get("traceback", "")),
            )
        return ExecResult(
            stdout=str(msg.get("stdout", "")),
            stderr=str(msg.get("stderr", "")),
            error=error,
            final_answer=msg.get("final_answer"),
            called_final_answer=bool(msg.get("called_final_answer", False)),
            value=msg.get("value") if isinstance(msg.get("value"), str) else None,
            duration_s=host_seconds,
            truncated=bool(msg.get("truncated", False)),
            rolled_back=bool(msg.get("rolled_back", False)),
        )


def _log_tail(sandbox: Any) -> str:
    fn = getattr(sandbox, "log_tail", None)
    try:
        return fn(1500).strip() if callable(fn) else ""
    except Exception:  # noqa: BLE001
        return ""


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return value
