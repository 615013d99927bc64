"""The RunStore contract, run against SQLite and a real PostgreSQL server alike."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tinyact.serve.limits import QueueFull
from tinyact.serve.store import RunStore, SqliteRunStore, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(db: str):
    s, _ = open_store(db)
    yield s
    s.close()


def new(store: RunStore, id: str, key: str = "k", owner: str = "A", **kw) -> float:
    return store.create(id, key, f"task {id}", "m", {"task": f"task {id}"}, owner=owner, **kw)


def test_create_get_page_roundtrip(store: RunStore):
    for i in range(5):
        new(store, f"r{i}")
        time.sleep(0.002)
    new(store, "other", key="k2")
    row = store.get("r0")
    assert row["status"] == "queued" and row["request"] == {"task": "task r0"} and row["steps"] == []
    assert row["owner"] == "A" and row["cancel_requested"] == 0 and store.get("nope") is None
    first = store.page("k", 2, None)
    assert [r["id"] for r in first] == ["r4", "r3"] and first[0]["n"] == 0
    rest = store.page("k", 10, (first[-1]["created_at"], first[-1]["id"]))
    assert [r["id"] for r in rest] == ["r2", "r1", "r0"]


def test_steps_are_recorded_by_index_and_fenced_by_owner(store: RunStore):
    new(store, "r")
    assert store.add_step("r", 0, {"index": 0, "obs": "a"}, "A")
    assert store.add_step("r", 1, {"index": 1, "obs": "b"}, "A")
    assert store.add_step("r", 1, {"index": 1, "obs": "b again"}, "A")  # a step re-run after a takeover
    assert not store.add_step("r", 2, {"index": 2}, "B")  # not B's run
    assert store.get("r")["steps"] == [{"index": 0, "obs": "a"}, {"index": 1, "obs": "b again"}]
    assert store.page("k", 1, None)[0]["n"] == 2


def test_finish_once_fenced_with_large_answers(store: RunStore):
    new(store, "r")
    assert not store.finish("r", status="finished", answer=1, owner="B")
    traj = {"steps": [{"index": 0}], "final_answer": 7**200}
    assert store.finish("r", status="finished", end_reason="final_answer", answer=7**200, trajectory=traj, owner="A")
    assert not store.finish("r", status="failed", error="late")  # already ended
    row = store.get("r")
    assert row["status"] == "finished" and row["answer"] == 7**200 and row["steps"] == [{"index": 0}]
    assert row["trajectory"]["final_answer"] == 7**200 and row["finished_at"] >= row["created_at"]
    assert not store.add_step("r", 1, {}, "A")  # an ended run takes no more steps


def test_key_limits_are_counted_in_the_table(store: RunStore):
    for i in range(3):
        new(store, f"r{i}", max_total=3)
    with pytest.raises(QueueFull):
        new(store, "r3", max_total=3)
    new(store, "x", key="k2", max_total=3)  # another key is not affected
    assert store.start("r0", "k", "A", max_active=2) and store.start("r1", "k", "A", max_active=2)
    assert not store.start("r2", "k", "A", max_active=2)
    assert not store.start("r2", "k", "B", max_active=5)  # only the owner starts its run
    store.finish("r0", status="finished", owner="A")
    assert store.start("r2", "k", "A", max_active=2) and store.count("k", "running") == 2


def test_starts_racing_from_two_connections_never_exceed_the_limit(db: str):
    a, _ = open_store(db)
    b, _ = open_store(db)
    try:
        for i in range(12):
            new(a, f"r{i}", owner="A" if i % 2 else "B")
        started: list[str] = []

        def worker(s: RunStore, owner: str) -> None:
            for i in range(12):
                if (owner == "A") == bool(i % 2) and s.start(f"r{i}", "k", owner, max_active=3):
                    started.append(f"r{i}")

        threads = [threading.Thread(target=worker, args=(s, o)) for s, o in ((a, "A"), (b, "B"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(started) == 3 and a.count("k", "running") == 3
    finally:
        a.close()
        b.close()


def test_leases_are_renewed_released_and_claimed_exactly_once(db: str):
    a, _ = open_store(db)
    b, _ = open_store(db)
    c, _ = open_store(db)
    try:
        new(a, "r1", lease=0.3)
        new(a, "r2", lease=0.3)
        assert a.renew("A", 30) == {"r1", "r2"}
        assert b.claim_expired("B", 30) == []  # alive
        a._n("UPDATE api_runs SET lease_until = 0 WHERE id = 'r2'")  # A stopped renewing r2
        won: dict[str, list[str]] = {"B": [], "C": []}

        def claim(s: RunStore, owner: str) -> None:
            for _ in range(20):
                won[owner] += [r["id"] for r in s.claim_expired(owner, 30)]

        threads = [threading.Thread(target=claim, args=(s, o)) for s, o in ((b, "B"), (c, "C"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won["B"] + won["C"]) == ["r2"]  # one replica got it, once
        winner = "B" if won["B"] else "C"
        row = a.get("r2")
        assert row["owner"] == winner and row["attempts"] == 1
        assert a.renew("A", 30) == {"r1"}  # A lost r2: its renewals no longer reach it
        assert not a.add_step("r2", 0, {}, "A")
        assert a.release("A") == 1 and [r["id"] for r in b.claim_expired("B", 30)] == ["r1"]
        mine = {"r1", "r2"} if winner == "B" else {"r2"}
        assert {r["id"] for r in b.claim_expired(winner, 30, own=True)} == mine  # a restarted owner's runs
    finally:
        for s in (a, b, c):
            s.close()


def test_cancel_flag(store: RunStore):
    new(store, "r")
    new(store, "s", owner="B")
    assert store.cancel_requests("A") == []
    assert store.request_cancel("r")
    assert store.cancel_requests("A") == ["r"] and store.cancel_requests("B") == []
    store.finish("r", status="finished", end_reason="cancelled")
    assert store.cancel_requests("A") == [] and not store.request_cancel("r")


def test_sqlite_tables_from_before_leases_are_migrated(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""CREATE TABLE api_runs (id TEXT PRIMARY KEY, key_id TEXT NOT NULL, task TEXT NOT NULL,
        model TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL, end_reason TEXT, answer TEXT, error TEXT,
        steps TEXT NOT NULL DEFAULT '[]', trajectory TEXT, created_at REAL NOT NULL, finished_at REAL);
        INSERT INTO api_runs (id, key_id, task, model, request, status, created_at)
        VALUES ('old', 'k', 't', 'm', '{}', 'running', 1.0);""")
    conn.commit()
    conn.close()
    store = SqliteRunStore(str(path))
    try:
        assert [r["id"] for r in store.claim_expired("A", 30)] == ["old"]  # no lease: claimable
        assert store.get("old")["owner"] == "A"
    finally:
        store.close()


def test_a_bad_postgres_url_is_one_clear_error():
    pytest.importorskip("psycopg")
    from tinyact.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot connect to the database"):
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_cli_serve_with_an_unreachable_database_is_one_clear_line(tmp_path: Path):
    import subprocess
    import sys

    pytest.importorskip("psycopg")
    out = subprocess.run(
        [sys.executable, "-m", "tinyact.cli", "serve", "--db", "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("error: cannot connect to the database:")
