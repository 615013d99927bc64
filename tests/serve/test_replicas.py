"""Replicas of the agent API on one real PostgreSQL database, each a real server process.

A run started on one replica is read, listed and cancelled through another; a
SIGKILLed replica's run is finished by exactly one of the others, its committed
steps kept and none executed twice; a key's limits hold across replicas.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

from tests.serve.helpers import wait_for
from tests.serve.server import Server

LEASE = "2"


def replicas(tmp: Path, db: str, names: str, *args: str, key: str = "k1") -> list[Server]:
    servers = [Server(tmp, db, "--replica-id", n, "--lease-ttl", LEASE, "--on-restart", "resume",
                      "--api-key", "k1", "--api-key", "k2", "--call-log", str(tmp / "calls"), *args, key=key)
               for n in names]
    return [s.wait_ready() for s in servers]


def status(server: Server, run_id: str) -> dict:
    return server.client.get(f"/v1/runs/{run_id}").json()


def test_a_run_is_read_listed_and_cancelled_through_another_replica(tmp_path: Path, pg_url: str):
    a, b = replicas(tmp_path, pg_url, "AB")
    try:
        run = a.client.post("/v1/runs", json={"task": "sleep", "background": True}).json()
        wait_for(lambda: status(b, run["id"])["status"] == "running")
        time.sleep(0.5)  # inside time.sleep(60) on A
        assert run["id"] in [r["id"] for r in b.client.get("/v1/runs").json()["data"]]
        other_key = {"Authorization": "Bearer k2"}
        assert b.client.get(f"/v1/runs/{run['id']}", headers=other_key).status_code == 404
        assert b.client.delete(f"/v1/runs/{run['id']}", headers=other_key).status_code == 404
        started = time.monotonic()
        r = b.client.delete(f"/v1/runs/{run['id']}")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "finished" and r.json()["end_reason"] == "cancelled"
        assert time.monotonic() - started < 5  # A saw the flag and killed the sandbox
        assert status(a, run["id"])["end_reason"] == "cancelled"
        assert "tinyact_active_sandboxes 0" in a.client.get("/metrics").text
        assert b.client.delete(f"/v1/runs/{run['id']}").status_code == 409
        assert a.client.delete(f"/v1/runs/{run['id']}").status_code == 409
    finally:
        for s in (a, b):
            s.stop()


def test_a_killed_replicas_run_is_finished_by_exactly_one_other(tmp_path: Path, pg_url: str):
    a, b, c = replicas(tmp_path, pg_url, "ABC")
    try:
        run = a.client.post("/v1/runs", json={"task": "relay", "background": True}).json()
        # step 0 committed on A; step 1 is blocked in gate()
        wait_for(lambda: len(status(b, run["id"])["steps"]) == 1)
        time.sleep(0.3)
        a.stop(signal.SIGKILL)
        (tmp_path / "gate").touch()
        done = wait_for(lambda: (i := status(b, run["id"]))["status"] == "finished" and i, timeout=30)
        assert done["answer"] == 42 and done["end_reason"] == "final_answer"  # x = 41 rebuilt by replay
        assert [s["index"] for s in done["steps"]] == [0, 1, 2]
        assert "A" in done["steps"][0]["observation"] and "open" in done["steps"][1]["observation"]
        assert status(c, run["id"]) == done
        calls = collections.Counter(line for line in (tmp_path / "calls").read_text().splitlines()
                                    if " relay " in line)
        # every step proposed exactly once across the replicas: step 1's proposal was a committed
        # write of A's (LangGraph keeps a finished node's writes), so the taker only executed it again
        assert sorted(line.split()[2] for line in calls) == ["0", "1", "2"] and set(calls.values()) == {1}, calls
        assert calls["A relay 0"] == calls["A relay 1"] == 1
        takers = {line.split()[0] for line in calls} - {"A"}
        assert len(takers) == 1 and takers <= {"B", "C"}, calls  # one replica took the run over
    finally:
        for s in (a, b, c):
            s.stop()


def test_a_keys_limits_hold_across_replicas(tmp_path: Path, pg_url: str):
    a, b = replicas(tmp_path, pg_url, "AB", "--max-active", "1", "--max-queued", "1")
    try:
        first = a.client.post("/v1/runs", json={"task": "hold", "background": True}).json()
        wait_for(lambda: status(a, first["id"])["status"] == "running")
        second = b.client.post("/v1/runs", json={"task": "quick", "background": True})
        assert second.status_code == 202
        second = second.json()
        time.sleep(0.5)
        assert status(a, second["id"])["status"] == "queued"  # B's run waits for A's to end
        for s in (a, b):
            r = s.client.post("/v1/runs", json={"task": "quick", "background": True})
            assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
        other = a.client.post("/v1/runs", json={"task": "quick"}, headers={"Authorization": "Bearer k2"})
        assert other.json()["answer"] == 42  # another key has its own limits
        (tmp_path / "gate").touch()
        assert wait_for(lambda: status(b, second["id"])["status"] == "finished")
        assert status(a, first["id"])["answer"] == "through" and status(a, second["id"])["answer"] == 42
        assert b.client.post("/v1/runs", json={"task": "quick"}).json()["answer"] == 42
    finally:
        for s in (a, b):
            s.stop()


def test_a_stopped_replicas_queued_and_running_runs_move_at_once(tmp_path: Path, pg_url: str):
    """SIGTERM releases the leases: another replica resumes the runs without waiting for them to expire."""
    a, b = replicas(tmp_path, pg_url, "AB", "--max-active", "1", "--lease-ttl", "300")
    try:
        held = a.client.post("/v1/runs", json={"task": "hold", "background": True}).json()
        queued = a.client.post("/v1/runs", json={"task": "quick", "background": True}).json()
        wait_for(lambda: status(b, held["id"])["status"] == "running")
        a.stop(signal.SIGTERM)
        (tmp_path / "gate").touch()
        for run in (held, queued):
            assert wait_for(lambda: status(b, run["id"])["status"] == "finished", timeout=30)
        assert status(b, held["id"])["answer"] == "through" and status(b, queued["id"])["answer"] == 42
    finally:
        for s in (a, b):
            s.stop()


def test_cli_serve_on_postgres_creates_the_schema_and_answers(tmp_path: Path, pg_url: str):
    import subprocess
    import sys

    import httpx
    import psycopg

    from tests.serve.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tinyact.cli", "serve", "--db", pg_url, "--engine-url",
                             f"http://127.0.0.1:{free_port()}/v1", "--model", "served", "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up():
            assert proc.poll() is None, proc.stdout.read()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v1/runs").json()
            except httpx.TransportError:
                return None

        assert wait_for(up, timeout=90) == {"data": [], "next_cursor": None}
        with psycopg.connect(pg_url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            owners = conn.execute("SELECT count(*) FROM api_runs").fetchone()[0]
        assert {"api_runs", "checkpoints", "checkpoint_writes", "checkpoint_blobs"} <= tables and owners == 0
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_runs_events_stream_from_a_replica_that_does_not_execute_it(tmp_path: Path, pg_url: str):
    """Behind a load balancer the SSE request lands anywhere: B follows A's run step by step to its end."""
    import json

    a, b = replicas(tmp_path, pg_url, "AB")
    try:
        run = a.client.post("/v1/runs", json={"task": "relay", "background": True}).json()
        wait_for(lambda: len(status(b, run["id"])["steps"]) == 1)  # step 1 waits in gate() on A
        events, kind = [], None
        with b.client.stream("GET", f"/v1/runs/{run['id']}/events") as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
                    if kind == "step" and len(events) == 2:
                        (tmp_path / "gate").touch()  # the stream is open and has step 0: let A go on
        kinds = [k for k, _ in events]
        assert kinds == ["run", "step", "step", "step", "final"], kinds
        assert [d["index"] for k, d in events if k == "step"] == [0, 1, 2]
        assert events[-1][1]["answer"] == 42 and events[-1][1]["status"] == "finished"
        assert [d for k, d in events if k == "step"] == status(a, run["id"])["steps"]
    finally:
        for s in (a, b):
            s.stop()


def test_a_conversation_started_on_one_replica_continues_on_another(tmp_path: Path, pg_url: str, monkeypatch):
    """Conversation snapshots live in the shared database: turn 2 on B has turn 1's variable (from A),
    though the replicas share no folder (each its own TINYACT_HOME, as on two hosts)."""
    started = []
    for name in "AB":
        monkeypatch.setenv("TINYACT_HOME", str(tmp_path / f"host-{name}"))
        started += replicas(tmp_path, pg_url, name)
    a, b = started
    try:
        first = a.client.post("/v1/runs", json={"task": "remember", "conversation": "c1"})
        assert first.status_code == 200, first.text
        assert first.json()["answer"] == 42 and "A" in first.json()["steps"][0]["observation"]
        second = b.client.post("/v1/runs", json={"task": "recall", "conversation": "c1"}).json()
        assert second["steps"][0]["error"] is None, second["steps"][0]
        assert second["answer"] == 84 and "B" in second["steps"][0]["observation"]
    finally:
        for s in (a, b):
            s.stop()
