"""RunStore: the runs table (status, steps so far, answer) in SQLite.

The LangGraph checkpoints of the same runs live in the same file (written by
``SqliteSaver``); this table is what the API lists and reads, and what tells a
restarted server which runs a previous process left unfinished.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from typing import Any

__all__ = ["RunStore", "decode_cursor", "encode_cursor", "to_json"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_runs (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    end_reason TEXT,
    answer TEXT,
    error TEXT,
    steps TEXT NOT NULL DEFAULT '[]',
    trajectory TEXT,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS api_runs_by_key ON api_runs (key_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS api_runs_by_status ON api_runs (status);
"""


def to_json(value: Any) -> str:
    return json.dumps(value, default=repr)


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class RunStore:
    """Thread-safe access to the ``api_runs`` table (one connection, one lock)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = connect(path)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.executescript(SCHEMA)

    def create(self, id: str, key_id: str, task: str, model: str, request: dict) -> float:
        created = time.time()
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_runs (id, key_id, task, model, request, status, created_at) VALUES (?,?,?,?,?,?,?)",
                (id, key_id, task, model, to_json(request), "queued", created),
            )
        return created

    def set_status(self, id: str, status: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE api_runs SET status = ? WHERE id = ?", (status, id))

    def add_step(self, id: str, step: dict) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE api_runs SET steps = json_insert(steps, '$[#]', json(?)) WHERE id = ?", (to_json(step), id)
            )

    def finish(
        self, id: str, *, status: str, end_reason: str | None = None, answer: Any = None,
        error: str | None = None, trajectory: dict | None = None,
    ) -> None:
        steps = to_json(trajectory["steps"]) if trajectory is not None else None
        with self._lock:
            self._conn.execute(
                "UPDATE api_runs SET status = ?, end_reason = ?, answer = ?, error = ?, trajectory = ?,"
                " steps = COALESCE(?, steps), finished_at = ? WHERE id = ?",
                (status, end_reason, to_json(answer), error, to_json(trajectory) if trajectory else None,
                 steps, time.time(), id),
            )

    def get(self, id: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM api_runs WHERE id = ?", (id,)).fetchone()
        return _row(row) if row is not None else None

    def page(self, key_id: str, limit: int, cursor: tuple[float, str] | None) -> list[dict]:
        """Newest first; ``cursor`` is the (created_at, id) of the last row of the previous page."""
        cols = "id, key_id, task, status, end_reason, answer, created_at, finished_at, json_array_length(steps) AS n"
        with self._lock:
            if cursor is None:
                rows = self._conn.execute(
                    f"SELECT {cols} FROM api_runs WHERE key_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                    (key_id, limit),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT {cols} FROM api_runs WHERE key_id = ? AND (created_at, id) < (?, ?)"
                    " ORDER BY created_at DESC, id DESC LIMIT ?",
                    (key_id, cursor[0], cursor[1], limit),
                ).fetchall()
        return [_row(r) for r in rows]

    def unfinished(self) -> list[dict]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM api_runs WHERE status IN ('queued', 'running') ORDER BY created_at"
            ).fetchall()
        return [_row(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _row(row: sqlite3.Row) -> dict:
    out = dict(row)
    for name in ("answer", "steps", "trajectory", "request"):
        if out.get(name) is not None:
            out[name] = json.loads(out[name])
    return out


def encode_cursor(created_at: float, run_id: str) -> str:
    """An opaque page cursor: the position of the last row of a page."""
    return base64.urlsafe_b64encode(f"{created_at!r}|{run_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position in ``cursor``; ValueError when it is not one ``encode_cursor`` made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, run_id = raw.split("|", 1)
        return float(created), run_id
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"bad cursor {cursor!r}") from None
