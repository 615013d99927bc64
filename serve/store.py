"""RunStore: the runs table (status, steps so far, answer, lease), in SQLite or PostgreSQL.

The LangGraph checkpoints of the same runs live in the same database (written
by ``SqliteSaver`` or ``PostgresSaver``); this table is what the API lists and
reads, and what lets replicas cooperate:

- every queued or running run has an **owner** (a replica id) and a **lease**
  (``lease_until``, in the database's clock) that its owner renews; a run whose
  lease expired is claimed by exactly one other replica (one conditional
  ``UPDATE``), which resumes it from its last checkpoint;
- writes of a run's progress are **fenced** by its owner: a replica that lost a
  run's lease can no longer record steps or its end;
- ``cancel_requested`` is the cancel flag a ``DELETE`` on another replica sets
  and the owner polls;
- per-key limits are **counted in the table** (queued + running rows of the
  key), under a per-key lock (``BEGIN IMMEDIATE`` in SQLite, a transaction
  advisory lock in PostgreSQL), so they hold across replicas.

``open_store(db)`` picks the backend: a ``postgresql://`` URL or a SQLite path.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tinyact.serve.limits import QueueFull

__all__ = ["RunStore", "SqliteRunStore", "check_database", "decode_cursor", "encode_cursor", "open_store", "to_json"]

ACTIVE = "('queued', 'running')"

SQLITE_SCHEMA = """
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
# Columns added for replicas (migrated onto tables made before them).
LEASE_COLUMNS = {"owner": "TEXT", "lease_until": "REAL", "cancel_requested": "INTEGER NOT NULL DEFAULT 0",
                 "attempts": "INTEGER NOT NULL DEFAULT 0"}


def to_json(value: Any) -> str:
    return json.dumps(value, default=repr)


def is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def check_database(db: str) -> None:
    """ConfigError (one clear line) when ``db`` cannot be used: for ``tinyact serve`` to fail early."""
    if is_postgres(db):
        from tinyact.serve.store_pg import check_postgres

        check_postgres(db)


def open_store(db: str, *, pool_size: int = 16) -> tuple[RunStore, Any]:
    """The runs table and a LangGraph checkpointer on the same database, both set up."""
    if is_postgres(db):
        from tinyact.serve.store_pg import open_postgres

        return open_postgres(db, pool_size=pool_size)
    from langgraph.checkpoint.sqlite import SqliteSaver

    from tinyact.agents.agent import state_serde

    store = SqliteRunStore(db)
    saver = SqliteSaver(connect(db), serde=state_serde())
    saver.setup()
    return store, saver


class RunStore:
    """The runs table; subclasses give the connection, the per-key lock and the SQL dialect.

    SQL here is written with ``?`` placeholders; ``NOW`` is the database's clock
    in epoch seconds; ``STEPS_SET`` records step ``i`` (replacing it when a run
    taken over records it again); ``STEPS_LEN`` counts steps.
    """

    NOW = ""
    STEPS_SET = ""
    STEPS_LEN = ""
    JSON_COLUMNS: tuple[str, ...] = ("answer", "steps", "trajectory", "request")

    # -- what a backend provides

    def _q(self, sql: str, params: tuple = ()) -> list[dict]:
        """Run one statement; its rows (SELECT, RETURNING) or []."""
        raise NotImplementedError

    def _n(self, sql: str, params: tuple = ()) -> int:
        """Run one statement; the rows it changed."""
        raise NotImplementedError

    @contextmanager
    def _locked(self, key_id: str) -> Iterator[RunStore]:
        """A transaction holding the lock of ``key_id``: yields an object with ``_q``/``_n``."""
        raise NotImplementedError
        yield self

    def close(self) -> None:
        raise NotImplementedError

    # -- the contract

    def create(self, id: str, key_id: str, task: str, model: str, request: dict, *, owner: str = "",
               lease: float = 30.0, max_total: int | None = None) -> float:
        """Insert a queued run owned by ``owner``; ``QueueFull`` when the key already has
        ``max_total`` queued or running runs (None: no bound)."""
        created = time.time()
        with self._locked(key_id) as tx:
            if max_total is not None:
                n = tx._q(f"SELECT count(*) AS n FROM api_runs WHERE key_id = ? AND status IN {ACTIVE}", (key_id,))
                if n[0]["n"] >= max_total:
                    raise QueueFull(key_id)
            tx._n(
                "INSERT INTO api_runs (id, key_id, task, model, request, status, created_at, owner, lease_until)"
                f" VALUES (?,?,?,?,?,'queued',?,?, {self.NOW} + ?)",
                (id, key_id, task, model, to_json(request), created, owner, lease),
            )
        return created

    def start(self, id: str, key_id: str, owner: str, max_active: int) -> bool:
        """Move a queued run to running if its key has fewer than ``max_active`` running."""
        with self._locked(key_id) as tx:
            n = tx._q("SELECT count(*) AS n FROM api_runs WHERE key_id = ? AND status = 'running'", (key_id,))
            if n[0]["n"] >= max_active:
                return False
            return tx._n("UPDATE api_runs SET status = 'running' WHERE id = ? AND owner = ? AND status = 'queued'",
                         (id, owner)) == 1

    def add_step(self, id: str, index: int, step: dict, owner: str) -> bool:
        """Record step ``index``; False when ``owner`` no longer holds the run."""
        return self._n(f"UPDATE api_runs SET steps = {self.STEPS_SET} WHERE id = ? AND owner = ?"
                       f" AND status IN {ACTIVE}", (str(index), to_json(step), id, owner)) == 1

    def finish(
        self, id: str, *, status: str, end_reason: str | None = None, answer: Any = None,
        error: str | None = None, trajectory: dict | None = None, owner: str | None = None,
    ) -> bool:
        """End an active run (fenced by ``owner`` when given); False when it was not active
        (or not ``owner``'s)."""
        steps = to_json(trajectory["steps"]) if trajectory is not None else None
        fence = " AND owner = ?" if owner is not None else ""
        return self._n(
            "UPDATE api_runs SET status = ?, end_reason = ?, answer = ?, error = ?, trajectory = ?,"
            f" steps = COALESCE({self._json_param()}, steps), finished_at = ?, lease_until = NULL"
            f" WHERE id = ? AND status IN {ACTIVE}{fence}",
            (status, end_reason, to_json(answer), error, to_json(trajectory) if trajectory else None,
             steps, time.time(), id, *((owner,) if owner is not None else ())),
        ) == 1

    def get(self, id: str) -> dict | None:
        rows = self._q("SELECT * FROM api_runs WHERE id = ?", (id,))
        return self._row(rows[0]) if rows else None

    def page(self, key_id: str, limit: int, cursor: tuple[float, str] | None) -> list[dict]:
        """Newest first; ``cursor`` is the (created_at, id) of the last row of the previous page."""
        cols = f"id, key_id, task, status, end_reason, answer, created_at, finished_at, {self.STEPS_LEN} AS n"
        if cursor is None:
            rows = self._q(f"SELECT {cols} FROM api_runs WHERE key_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
                           (key_id, limit))
        else:
            rows = self._q(f"SELECT {cols} FROM api_runs WHERE key_id = ? AND (created_at, id) < (?, ?)"
                           " ORDER BY created_at DESC, id DESC LIMIT ?", (key_id, cursor[0], cursor[1], limit))
        return [self._row(r) for r in rows]

    # -- leases and cancel flags

    def renew(self, owner: str, lease: float) -> set[str]:
        """Extend the lease of every active run ``owner`` holds; their ids."""
        rows = self._q(f"UPDATE api_runs SET lease_until = {self.NOW} + ? WHERE owner = ? AND status IN {ACTIVE}"
                       " RETURNING id", (lease, owner))
        return {r["id"] for r in rows}

    def release(self, owner: str) -> int:
        """Expire ``owner``'s leases now (a graceful stop): other replicas take the runs at once."""
        return self._n(f"UPDATE api_runs SET lease_until = 0 WHERE owner = ? AND status IN {ACTIVE}", (owner,))

    def claim_expired(self, owner: str, lease: float, *, own: bool = False) -> list[dict]:
        """Take every active run whose lease expired (and, with ``own``, those ``owner`` held
        before a restart). Each row goes to exactly one caller."""
        mine = " OR owner = ?" if own else ""
        rows = self._q(
            f"UPDATE api_runs SET owner = ?, lease_until = {self.NOW} + ?, attempts = attempts + 1"
            f" WHERE status IN {ACTIVE} AND (lease_until IS NULL OR lease_until < {self.NOW}{mine}) RETURNING *",
            (owner, lease, *((owner,) if own else ())),
        )
        return sorted((self._row(r) for r in rows), key=lambda r: r["created_at"])

    def request_cancel(self, id: str) -> bool:
        """Raise the cancel flag of an active run (its owner polls it)."""
        return self._n(f"UPDATE api_runs SET cancel_requested = 1 WHERE id = ? AND status IN {ACTIVE}", (id,)) == 1

    def cancel_requests(self, owner: str) -> list[str]:
        """Active runs of ``owner`` whose cancel flag is up."""
        rows = self._q(f"SELECT id FROM api_runs WHERE owner = ? AND cancel_requested = 1 AND status IN {ACTIVE}",
                       (owner,))
        return [r["id"] for r in rows]

    def count(self, key_id: str, status: str) -> int:
        return self._q("SELECT count(*) AS n FROM api_runs WHERE key_id = ? AND status = ?", (key_id, status))[0]["n"]

    # -- helpers

    def _json_param(self) -> str:
        return "?"

    def _row(self, row: Any) -> dict:
        out = dict(row)
        for name in self.JSON_COLUMNS:
            if isinstance(out.get(name), str):
                out[name] = json.loads(out[name])
        return out


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit is in the WAL file before it returns, so a killed process loses
        # nothing committed; only an OS crash or power loss may take the last commits back
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteRunStore(RunStore):
    """The runs table in a SQLite file (one connection, one lock): one machine, the default."""

    DIALECT = "sqlite"
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    STEPS_SET = "json_set(steps, '$[' || ? || ']', json(?))"
    STEPS_LEN = "json_array_length(steps)"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = connect(path)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.executescript(SQLITE_SCHEMA)
            have = {r["name"] for r in self._conn.execute("PRAGMA table_info(api_runs)")}
            for name, kind in LEASE_COLUMNS.items():
                if name not in have:
                    self._conn.execute(f"ALTER TABLE api_runs ADD COLUMN {name} {kind}")
            self._conn.execute("CREATE INDEX IF NOT EXISTS api_runs_by_owner ON api_runs (owner, status)")
            from tinyact.serve.conversations import conversation_schema  # it imports this module

            for statement in conversation_schema(self.DIALECT):
                self._conn.execute(statement)

    def _q(self, sql: str, params: tuple = ()) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    def _n(self, sql: str, params: tuple = ()) -> int:
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    @contextmanager
    def _locked(self, key_id: str) -> Iterator[RunStore]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # the database's write lock: every key at once
            try:
                yield self
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


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
