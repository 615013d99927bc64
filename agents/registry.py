"""Live sandbox sessions, one per run, outside the graph state; rebuilt when they die."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tinyact.errors import SandboxError

__all__ = ["SessionRegistry", "committed_code"]

log = logging.getLogger(__name__)


def committed_code(steps: Sequence[dict]) -> list[str]:
    """The code actions whose effects the session holds, in order.

    A step counts when its code ran and was not rolled back: a timeout, a
    crash or a dead sandbox leaves the variables as they were before it.
    """
    out = []
    for step in steps:
        result = step.get("result")
        code = (step.get("action") or {}).get("code")
        if result is None or not code or result.get("rolled_back"):
            continue
        out.append(code)
    return out


def _alive(session: Any) -> bool:
    """A ping where the session offers one (a round trip, under a millisecond), else not closed."""
    alive = getattr(session, "alive", None)
    return alive() if callable(alive) else not getattr(session, "closed", False)


class SessionRegistry:
    """Owns the sandbox session of each run (by ``run_id``).

    After a restart the registry is empty while the checkpointed state still
    has the committed steps; ``get`` then opens a new session and replays the
    code those steps executed, so variables are back as they were. A session
    that died (the code killed it, the OOM killer, a broken channel) is
    rebuilt the same way (``rebuild``), never handed back.
    """

    def __init__(self, open_session: Callable[..., Any], tools: Mapping[str, Callable[..., Any]]) -> None:
        self._open = open_session
        self._tools = dict(tools)
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.replayed: dict[str, int] = {}
        """run_id -> how many committed actions were replayed to rebuild its session."""
        self.rebuilds: dict[str, int] = {}
        """run_id -> how many times its session was rebuilt after dying."""
        self.extra_kept: dict[str, bool] = {}
        """run_id -> whether the last rebuild's `extra` code replayed without killing the sandbox."""
        self._setup: dict[str, tuple[str, ...]] = {}
        """run_id -> code of a conversation's earlier turns, replayed before the committed steps."""

    def get(self, run_id: str, steps: list[dict], timeout: float | None = None, setup: Sequence[str] = ()) -> Any:
        """The run's live session (pinged); a new one replays ``setup`` (code of earlier turns
        of a conversation) and the committed code when there is none or it died."""
        with self._lock:
            self._setup[run_id] = tuple(setup)
            session = self._sessions.get(run_id)
        if session is not None and _alive(session):
            return session
        return self.rebuild(run_id, steps, timeout=timeout, died=session is not None)

    def rebuild(
        self, run_id: str, steps: Sequence[dict], *, timeout: float | None = None, extra: Sequence[str] = (), died: bool = True
    ) -> Any:
        """A fresh session holding what the committed `steps` (then the `extra` code) did.

        Replays run with `timeout` (the agent's exec_timeout), each followed by a
        ping. An action whose replay kills the sandbox is left out and the
        replay starts over.
        """
        with self._lock:
            old = self._sessions.pop(run_id, None)
        if old is not None:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - it is dead already
                pass
        committed = committed_code(steps)
        setup = self._setup.get(run_id, ())
        codes = [*setup, *committed, *extra]
        dropped_extra = False
        for _attempt in range(3):
            session = self._open(tools=self._tools)
            done = 0
            try:
                for code in codes:
                    session.execute(code, timeout=timeout)
                    if not _alive(session):  # it answered, then the sandbox died: the code kills
                        raise SandboxError("the sandbox died right after the action")
                    done += 1
                break
            except SandboxError as e:
                log.warning("run %s: replaying committed action %d killed the sandbox (%s); skipped", run_id, done, e)
                session.close()
                dropped_extra = dropped_extra or done >= len(codes) - len(extra)
                del codes[done]
        replayed = max(len(codes) - len(setup), 0)
        self.extra_kept[run_id] = not dropped_extra
        with self._lock:
            self._sessions[run_id] = session
        self.replayed[run_id] = replayed
        if died:
            self.rebuilds[run_id] = self.rebuilds.get(run_id, 0) + 1
        return session

    def replace(self, run_id: str, session: Any) -> None:
        with self._lock:
            self._sessions[run_id] = session

    def close(self, run_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(run_id, None)
            self._setup.pop(run_id, None)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        for run_id in list(self._sessions):
            self.close(run_id)

    def __len__(self) -> int:
        return len(self._sessions)
