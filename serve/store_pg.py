"""The runs table in PostgreSQL, beside LangGraph's ``PostgresSaver``: several replicas, one database.

One ``psycopg_pool.ConnectionPool`` (autocommit connections, as ``PostgresSaver``
needs) serves both. The schema is created or migrated at start under a session
advisory lock, so replicas starting together do not race on ``CREATE TABLE``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tinyact.errors import ConfigError
from tinyact.serve.conversations import conversation_schema
from tinyact.serve.store import LEASE_COLUMNS, RunStore

__all__ = ["PostgresRunStore", "open_postgres"]

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
    steps JSONB NOT NULL DEFAULT '[]',
    trajectory TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS api_runs_by_key ON api_runs (key_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS api_runs_by_status ON api_runs (status);
"""
PG_TYPES = {"REAL": "DOUBLE PRECISION"}
SETUP_LOCK = 7_171_771  # the advisory lock id held while the schema is set up


class PostgresRunStore(RunStore):
    """``RunStore`` on a PostgreSQL pool; the per-key lock is ``pg_advisory_xact_lock``."""

    DIALECT = "postgres"
    NOW = "extract(epoch from clock_timestamp())::double precision"
    STEPS_SET = "jsonb_set(steps, ARRAY[?::text], ?::jsonb, true)"
    STEPS_LEN = "jsonb_array_length(steps)"

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def setup(self) -> None:
        with self.pool.connection() as conn:
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            for name, kind in LEASE_COLUMNS.items():
                kind = PG_TYPES.get(kind, kind)
                conn.execute(f"ALTER TABLE api_runs ADD COLUMN IF NOT EXISTS {name} {kind}")
            conn.execute("CREATE INDEX IF NOT EXISTS api_runs_by_owner ON api_runs (owner, status)")
            for statement in conversation_schema(self.DIALECT):
                conn.execute(statement)

    def _q(self, sql: str, params: tuple = ()) -> list[dict]:
        with self.pool.connection() as conn:
            cur = conn.execute(_pg(sql), params)
            return list(cur.fetchall()) if cur.description else []

    def _n(self, sql: str, params: tuple = ()) -> int:
        with self.pool.connection() as conn:
            return conn.execute(_pg(sql), params).rowcount

    @contextmanager
    def _locked(self, key_id: str) -> Iterator[RunStore]:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key_id,))
            yield _Tx(conn, self)

    def _json_param(self) -> str:
        return "?::jsonb"

    def close(self) -> None:
        self.pool.close()


class _Tx(RunStore):
    """Statements on one connection, inside the caller's transaction."""

    def __init__(self, conn: Any, store: PostgresRunStore) -> None:
        self.conn = conn
        self.NOW = store.NOW

    def _q(self, sql: str, params: tuple = ()) -> list[dict]:
        cur = self.conn.execute(_pg(sql), params)
        return list(cur.fetchall()) if cur.description else []

    def _n(self, sql: str, params: tuple = ()) -> int:
        return self.conn.execute(_pg(sql), params).rowcount


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def check_postgres(url: str) -> None:
    """One plain connection: a wrong URL fails at once (ConfigError), not after a pool's retries."""
    try:
        import psycopg
        import langgraph.checkpoint.postgres  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ConfigError("a postgresql:// database needs the postgres extra: pip install 'tinyact[postgres]'") from None
    try:
        psycopg.connect(url, connect_timeout=10).close()
    except psycopg.Error as e:
        message = " ".join(str(e).split())
        raise ConfigError(f"cannot connect to the database: {message}") from None


def open_postgres(url: str, *, pool_size: int = 16) -> tuple[PostgresRunStore, Any]:
    """A pool on ``url``, the runs table and a ``PostgresSaver`` on it, both set up."""
    check_postgres(url)
    import psycopg
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from tinyact.agents.agent import state_serde

    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=kwargs, open=False, name="tinyact")
    pool.open(wait=True, timeout=30)
    store = PostgresRunStore(pool)
    saver = PostgresSaver(pool, serde=state_serde())  # type: ignore[arg-type]
    try:
        with pool.connection() as conn:  # one replica at a time sets up the schema
            # try-lock in a loop, not pg_advisory_lock: a statement waiting on the lock holds a
            # snapshot, and the holder's CREATE INDEX CONCURRENTLY would wait for it in turn
            while not conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (SETUP_LOCK,)).fetchone()["ok"]:
                time.sleep(0.1)
            try:
                store.setup()
                saver.setup()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
    except psycopg.Error as e:
        pool.close()
        raise ConfigError(f"cannot set up the database: {e}") from None
    return store, saver
