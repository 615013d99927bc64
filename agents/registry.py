"""Live sandbox sessions, one per run, outside the graph state."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["SessionRegistry"]


class SessionRegistry:
    """Owns the sandbox session of each run (by ``run_id``).

    After a restart the registry is empty while the checkpointed state still
    has the committed steps; ``get`` then opens a new session and replays the
    code those steps executed, so variables are back as they were.
    """

    def __init__(self, open_session: Callable[..., Any], tools: Mapping[str, Callable[..., Any]]) -> None:
        self._open = open_session
        self._tools = dict(tools)
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.replayed: dict[str, int] = {}
        """run_id -> how many committed actions were replayed to rebuild its session."""

    def get(self, run_id: str, steps: list[dict], setup: Sequence[str] = ()) -> Any:
        """The run's session; a new one replays ``setup`` (code of earlier turns) and the committed steps."""
        with self._lock:
            session = self._sessions.get(run_id)
            if session is not None:
                return session
            session = self._open(tools=self._tools)
            self._sessions[run_id] = session
        for code in setup:
            session.execute(code)
        replayed = 0
        for step in steps:
            if step.get("result") is not None and step.get("action", {}).get("code"):
                session.execute(step["action"]["code"])
                replayed += 1
        self.replayed[run_id] = replayed
        return session

    def replace(self, run_id: str, session: Any) -> None:
        with self._lock:
            self._sessions[run_id] = session

    def close(self, run_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(run_id, None)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        for run_id in list(self._sessions):
            self.close(run_id)

    def __len__(self) -> int:
        return len(self._sessions)
