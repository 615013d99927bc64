"""Sandboxes started ahead of runs: every run still gets a fresh process of its own, closed at its end."""

from __future__ import annotations

import pytest

from tests.serve.helpers import asgi, make_service, wait_for
from tinyact.models.engines.scripted import act
from tinyact.serve.pool import SandboxPool

pytestmark = pytest.mark.anyio

LEAVE = "import os\nleft = 'over'\nopen(os.path.join(os.environ['HOME'], 'mark'), 'w').write('x')"
PEEK = "import os\nfinal_answer(globals().get('left', 'clean') + str(os.path.exists(os.path.join(os.environ['HOME'], 'mark'))))"
PID = {"leave": [act(LEAVE), act("final_answer(left)")], "peek": [act(PEEK)]}


async def test_runs_take_pooled_sandboxes_each_fresh():
    service = make_service(scripts=PID, sandbox_pool=2)
    async with asgi(service) as c:
        wait_for(lambda: len(service.pool) == 2)  # started ahead, before any run
        for _ in range(3):
            assert (await c.post("/v1/runs", json={"task": "leave"})).json()["answer"] == "over"
            # the next run sees neither the globals nor the files of the one before: a new sandbox
            assert (await c.post("/v1/runs", json={"task": "peek"})).json()["answer"] == "cleanFalse"
        assert service.pool.hits >= 4 and service.pool.reused == 0 and service.active_sandboxes == 0
        assert "tinyact_active_sandboxes 0" in (await c.get("/metrics")).text
        wait_for(lambda: len(service.pool) == 2)  # refilled
    assert len(service.pool) == 0  # closed with the service


def test_pool_without_ready_sessions_opens_one_and_close_stops_the_filler():
    pool = SandboxPool("auto", size=1)
    try:
        session = pool.open(tools={})  # nothing ready yet for this tool set: opened on the spot
        assert pool.misses == 1 and session.execute("print(1 + 1)").stdout.strip() == "2"
        session.close()
        wait_for(lambda: len(pool) == 1)
        again = pool.open(tools={})
        assert pool.hits == 1 and not again.closed
        again.close()
    finally:
        pool.close()
    assert len(pool) == 0


SLEEPER = "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)\nfinal_answer('started')"
ALIVE = ("import os\nfinal_answer(sum(1 for p in os.listdir('/proc') if p.isdigit()"
         " and b'sleep' in open(f'/proc/{p}/cmdline', 'rb').read()))")
REUSE = {**PID, "sleeper": [act(SLEEPER)], "alive": [act(ALIVE)]}


@pytest.mark.parametrize("ahead", [1, 0])
def test_opt_in_reuse_keeps_a_sandbox_per_key_reset_between_runs(ahead):
    """Over real HTTP: with sandbox_reuse a key's next run reuses its sandbox, reset (no
    globals, files or processes of the run before); another key never gets it. With no
    pool, the sandbox a run starts itself must outlive the run's thread (bwrap's
    --die-with-parent follows the thread that started it)."""
    import httpx

    from tests.serve.helpers import uvicorn_server

    service = make_service(scripts=REUSE, sandbox_pool=ahead, sandbox_reuse=True, api_keys=("key-a", "key-b"))
    with uvicorn_server(service) as url:
        a = httpx.Client(base_url=url, headers={"Authorization": "Bearer key-a"}, timeout=60)
        b = httpx.Client(base_url=url, headers={"Authorization": "Bearer key-b"}, timeout=60)
        pool = service.pool
        kept = lambda: pool.kept == 1 and not pool._dirty  # noqa: E731 - reset and kept for key a
        for _ in range(2):
            assert a.post("/v1/runs", json={"task": "leave"}).json()["answer"] == "over"
            wait_for(kept)
            reused = pool.reused
            assert a.post("/v1/runs", json={"task": "peek"}).json()["answer"] == "cleanFalse"
            assert pool.reused == reused + 1  # the same sandbox, reset
            wait_for(kept)
        assert a.post("/v1/runs", json={"task": "sleeper"}).json()["answer"] == "started"
        wait_for(kept)
        assert a.post("/v1/runs", json={"task": "alive"}).json()["answer"] == 0
        wait_for(kept)
        reused = pool.reused
        assert b.post("/v1/runs", json={"task": "peek"}).json()["answer"] == "cleanFalse"
        assert pool.reused == reused  # key b got a sandbox of its own
        wait_for(lambda: pool.kept == 2 and not pool._dirty)
        assert service.active_sandboxes == 0
        assert "tinyact_sandboxes_kept 2" in a.get("/metrics").text
        a.close()
        b.close()
    assert pool.kept == 0  # closed with the service
