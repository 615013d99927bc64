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
        assert service.pool.hits >= 4 and service.active_sandboxes == 0
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
