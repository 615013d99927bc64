"""Helpers for the agent API tests: services on scripted engines, ASGI and real uvicorn clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx

from tinyact.serve import RunService, ServerConfig, create_app
from tinyact.models.engines.scripted import ScriptedEngine, act

SCRIPTS = {
    "multiply": [act("x = 12345 * 6789\nprint(x)"), act("final_answer(x)")],
    "quick": [act("final_answer(6 * 7)")],
    "sleep": [act("import time\ntime.sleep(60)"), act("final_answer('woke')")],
    "wait": [act("print(gate())"), act("final_answer('through')")],
    "stepwise": [act("print(1)"), act("print(gate())"), act("final_answer(2)")],
}


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a /metrics body, parsed by prometheus_client (None when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


class Gate:
    """A host tool that blocks the run calling it until the test opens the gate."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)

        def gate() -> str:
            """Wait until the gate opens."""
            self.entered.release()
            self.open.wait(30)
            return "open"

        self.tool = gate


def make_service(gate: Gate | None = None, scripts=None, **config) -> RunService:
    config.setdefault("exec_timeout", 120)
    return RunService(
        ScriptedEngine(scripts or SCRIPTS), tools=[gate.tool] if gate else [], config=ServerConfig(**config)
    )


@asynccontextmanager
async def asgi(service: RunService, *, key: str | None = None, client=("127.0.0.1", 40000)) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app through the ASGI transport, lifespan included."""
    app = create_app(service)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers, timeout=60) as c:
            yield c


@contextmanager
def uvicorn_server(service: RunService) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1 (a free port), in a thread."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(interval)
