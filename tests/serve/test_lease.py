"""A replica that stops renewing (a long pause, not a crash) loses its run to another and writes nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve.helpers import Gate, make_service, wait_for
from tinyact.serve.protocol import RunRequest


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path: Path) -> str:
    return str(tmp_path / "runs.sqlite") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_paused_owner_is_fenced_off_and_the_taker_finishes_once(db: str, gate: Gate):
    a = make_service(gate, db=db, replica_id="A", lease_ttl=1.0, poll_interval=0.1, on_restart="resume")
    b = make_service(gate, db=db, replica_id="B", lease_ttl=1.0, poll_interval=0.1, on_restart="resume")
    a.start()
    b.start()
    try:
        handle = a.submit(RunRequest(task="stepwise"), "k")
        assert gate.entered.acquire(timeout=20)  # step 0 committed on A, step 1 blocked in gate()
        a.keeper.stop()  # A pauses: no more renewals
        wait_for(lambda: a.store.get(handle.id)["owner"] == "B", timeout=20)  # B took the run over
        assert gate.entered.acquire(timeout=20)  # ...and reached the same gate after replaying step 0
        gate.open.set()
        row = wait_for(lambda: (r := b.store.get(handle.id))["status"] == "finished" and r, timeout=30)
        assert handle.done.wait(20)  # A's thread gave up: its step 1 was refused
        assert row["answer"] == 2 and [s["index"] for s in row["steps"]] == [0, 1, 2]
        assert row["owner"] == "B" and row["attempts"] == 1
        assert [s["index"] for s in row["trajectory"]["steps"]] == [0, 1, 2]
        assert 'end_reason="final_answer"' not in a.metrics_text()  # A recorded no end
        assert 'tinyact_runs_total{end_reason="final_answer"} 1' in b.metrics_text()
        assert a.active_sandboxes == 0
    finally:
        gate.open.set()
        a.close()
        b.close()
