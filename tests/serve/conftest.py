from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.serve.helpers import Gate


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open.set()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (skipped with the reason when it cannot start)."""
    pytest.importorskip("psycopg", reason="needs the postgres extra (psycopg)")
    from tests.serve.postgres import PostgresServer

    try:
        server = PostgresServer().start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot start PostgreSQL: {e}")
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh database on the session's PostgreSQL server."""
    return postgres.database()
