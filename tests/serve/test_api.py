"""Every endpoint through httpx's ASGI transport, on scripted engines and real sandboxes."""

from __future__ import annotations

import json
import threading

import anyio
import httpx
import pytest

from tinyact.serve import RunService, ServerConfig
from tinyact.models.engines.scripted import ScriptedEngine, act
from tests.serve.helpers import SCRIPTS, asgi, make_service, metric

pytestmark = pytest.mark.anyio


def sse(text: str) -> list[tuple[str, dict | str]]:
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            data = fields["data"]
            events.append((fields.get("event", "message"), data if data == "[DONE]" else json.loads(data)))
    return events


async def wait_status(client: httpx.AsyncClient, run_id: str, predicate, timeout: float = 20):
    with anyio.fail_after(timeout):
        while True:
            info = (await client.get(f"/v1/runs/{run_id}")).json()
            if predicate(info):
                return info
            await anyio.sleep(0.05)


def test_public_api_is_curated():
    import tinyact.serve as api

    assert api.__all__ == sorted(api.__all__)
    assert all(getattr(api, name) is not None for name in api.__all__)


async def test_health_ready_openapi():
    async with asgi(make_service()) as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        ready = (await c.get("/readyz")).json()
        assert ready["ready"] and ready["model"] == "scripted"
        schema = (await c.get("/openapi.json")).json()
        assert {"/v1/runs", "/v1/runs/{run_id}", "/v1/chat/completions", "/metrics"} <= set(schema["paths"])
        assert {"RunRequest", "RunInfo", "ChatCompletionRequest", "ErrorResponse"} <= set(schema["components"]["schemas"])


async def test_readyz_is_503_until_the_engine_loaded():
    release = threading.Event()

    def loader():
        release.wait(10)
        return ScriptedEngine(SCRIPTS)

    service = RunService(loader, model_name="scripted", config=ServerConfig())
    async with asgi(service) as c:
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        r = await c.post("/v1/runs", json={"task": "quick"})
        assert r.status_code == 503 and "Retry-After" in r.headers
        release.set()
        with anyio.fail_after(10):
            while (await c.get("/readyz")).status_code != 200:
                await anyio.sleep(0.02)
        assert (await c.post("/v1/runs", json={"task": "quick"})).json()["answer"] == 42


async def test_run_waits_and_returns_answer_and_trajectory():
    async with asgi(make_service()) as c:
        r = await c.post("/v1/runs", json={"task": "multiply", "max_steps": 3})
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "finished" and body["end_reason"] == "final_answer"
        assert body["answer"] == 83810205
        assert [s["index"] for s in body["steps"]] == [0, 1] and "83810205" in body["steps"][0]["observation"]
        assert body["trajectory"]["task"] == "multiply" and len(body["trajectory"]["steps"]) == 2
        again = (await c.get(f"/v1/runs/{body['id']}")).json()
        assert again["answer"] == 83810205 and again["status"] == "finished"


async def test_stream_event_order():
    async with asgi(make_service()) as c:
        r = await c.post("/v1/runs", json={"task": "multiply", "stream": True})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.text)
        assert [k for k, _ in events] == ["run", "step", "step", "final"]
        run_id = events[0][1]["id"]
        assert r.headers["x-run-id"] == run_id
        assert [d["index"] for k, d in events if k == "step"] == [0, 1]
        final = events[-1][1]
        assert final == {**final, "id": run_id, "answer": 83810205, "end_reason": "final_answer", "steps": 2}


async def test_a_failing_engine_ends_with_an_error_event():
    async with asgi(make_service()) as c:
        r = await c.post("/v1/runs", json={"task": "no script for this", "stream": True})
        events = sse(r.text)
        assert [k for k, _ in events] == ["run", "error"]
        assert events[-1][1]["status"] == "failed" and "ReplayError" in events[-1][1]["error"]
        info = (await c.get(f"/v1/runs/{events[0][1]['id']}")).json()
        assert info["status"] == "failed" and info["end_reason"] == "error"


async def test_list_is_paginated_newest_first():
    async with asgi(make_service()) as c:
        ids = [(await c.post("/v1/runs", json={"task": "quick"})).json()["id"] for _ in range(5)]
        page1 = (await c.get("/v1/runs", params={"limit": 2})).json()
        page2 = (await c.get("/v1/runs", params={"limit": 2, "cursor": page1["next_cursor"]})).json()
        page3 = (await c.get("/v1/runs", params={"limit": 2, "cursor": page2["next_cursor"]})).json()
        listed = [r["id"] for p in (page1, page2, page3) for r in p["data"]]
        assert listed == ids[::-1] and page3["next_cursor"] is None
        assert page1["data"][0] == {**page1["data"][0], "answer": 42, "steps": 1, "status": "finished"}
        bad = await c.get("/v1/runs", params={"cursor": "nonsense"})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "query.cursor"


async def test_cancel_a_background_run_kills_its_sandbox(gate):
    service = make_service(gate)
    async with asgi(service) as c:
        r = await c.post("/v1/runs", json={"task": "sleep", "background": True})
        assert r.status_code == 202 and r.headers["location"] == f"/v1/runs/{r.json()['id']}"
        run_id = r.json()["id"]
        await wait_status(c, run_id, lambda i: i["status"] == "running")
        with anyio.fail_after(10):
            while service.active_sandboxes == 0:
                await anyio.sleep(0.02)
        await anyio.sleep(0.3)  # inside time.sleep(60) now
        r = await c.delete(f"/v1/runs/{run_id}")
        assert r.status_code == 200
        assert r.json()["status"] == "finished" and r.json()["end_reason"] == "cancelled"
        assert service.active_sandboxes == 0
        again = await c.delete(f"/v1/runs/{run_id}")
        assert again.status_code == 409
        assert (await c.delete("/v1/runs/run_nope")).status_code == 404
        assert metric((await c.get("/metrics")).text, "tinyact_runs_total", end_reason="cancelled") == 1


@pytest.mark.parametrize(
    "body,param",
    [
        ({"task": "quick", "samples": 0}, "body.samples"),
        ({"task": "quick", "max_steps": "many"}, "body.max_steps"),
        ({"task": ""}, "body.task"),
        ({"samples": 2}, "body.task"),
        ({"task": "quick", "colour": "red"}, "body.colour"),
        ({"task": "quick", "tools": ["gate", "rm_rf"]}, "body.tools.1"),
        ({"task": "quick", "samples": 9}, "body.samples"),
        ({"task": "quick", "max_steps": 21}, "body.max_steps"),
        ({"task": "quick", "model": "gpt-5"}, "body.model"),
    ],
)
async def test_validation_errors_are_422_naming_the_field(body, param, gate):
    async with asgi(make_service(gate)) as c:
        r = await c.post("/v1/runs", json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert param.removeprefix("body.").split(".")[0] in error["message"]


async def test_malformed_json_is_422():
    async with asgi(make_service()) as c:
        r = await c.post("/v1/runs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422


async def test_oversize_body_is_413_declared_or_streamed():
    async with asgi(make_service(max_body_bytes=1000)) as c:
        r = await c.post("/v1/runs", json={"task": "x" * 2000})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        async def chunks():
            for _ in range(5):
                yield b" " * 400

        r = await c.post("/v1/runs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert (await c.post("/v1/runs", json={"task": "quick"})).status_code == 200
        assert metric((await c.get("/metrics")).text, "tinyact_requests_rejected_total", reason="too_large") == 2


async def test_auth_missing_or_wrong_key_is_401():
    service = make_service(api_keys=("k-alice", "k-bob"))
    async with asgi(service) as anonymous:
        r = await anonymous.post("/v1/runs", json={"task": "quick"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "authentication_error"
        r = await anonymous.get("/v1/runs", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await anonymous.get("/v1/runs", headers={"Authorization": "Basic k-alice"})
        assert r.status_code == 401
        assert (await anonymous.get("/healthz")).status_code == 200  # probes need no key
        alice = {"Authorization": "Bearer k-alice"}
        bob = {"Authorization": "Bearer k-bob"}
        run = (await anonymous.post("/v1/runs", json={"task": "quick"}, headers=alice)).json()
        assert run["answer"] == 42
        # Keys are tenants: bob neither sees nor cancels alice's runs.
        assert (await anonymous.get(f"/v1/runs/{run['id']}", headers=bob)).status_code == 404
        assert (await anonymous.get("/v1/runs", headers=bob)).json()["data"] == []
        assert len((await anonymous.get("/v1/runs", headers=alice)).json()["data"]) == 1


async def test_without_keys_only_loopback_clients_are_served():
    async with asgi(make_service(), client=("10.1.2.3", 5555)) as remote:
        r = await remote.post("/v1/runs", json={"task": "quick"})
        assert r.status_code == 403 and "loopback" in r.json()["error"]["message"]


async def test_queue_full_is_429_with_retry_after_per_key(gate):
    service = make_service(gate, api_keys=("a", "b"), max_active_per_key=1, max_queued_per_key=1, retry_after=3)
    async with asgi(service, key="a") as c:
        first = (await c.post("/v1/runs", json={"task": "wait", "background": True})).json()
        second = (await c.post("/v1/runs", json={"task": "wait", "background": True})).json()
        await anyio.to_thread.run_sync(gate.entered.acquire)  # the first is inside gate()
        metrics = (await c.get("/metrics")).text
        assert metric(metrics, "tinyact_queue_depth") == 1 and metric(metrics, "tinyact_active_runs") == 1
        assert (await c.get(f"/v1/runs/{second['id']}")).json()["status"] == "queued"
        third = await c.post("/v1/runs", json={"task": "wait"})
        assert third.status_code == 429 and third.headers["retry-after"] == "3"
        assert third.json()["error"]["type"] == "rate_limit_error"
        # Another key has its own slots.
        other = await c.post("/v1/runs", json={"task": "quick"}, headers={"Authorization": "Bearer b"})
        assert other.status_code == 200 and other.json()["answer"] == 42
        gate.open.set()
        for run in (first, second):
            info = await wait_status(c, run["id"], lambda i: i["status"] == "finished")
            assert info["answer"] == "through"
        assert metric((await c.get("/metrics")).text, "tinyact_queue_depth") == 0


async def test_cancel_a_queued_run(gate):
    service = make_service(gate, max_active_per_key=1)
    async with asgi(service) as c:
        first = (await c.post("/v1/runs", json={"task": "wait", "background": True})).json()
        queued = (await c.post("/v1/runs", json={"task": "quick", "background": True})).json()
        await anyio.to_thread.run_sync(gate.entered.acquire)
        r = await c.delete(f"/v1/runs/{queued['id']}")
        assert r.json()["end_reason"] == "cancelled" and r.json()["steps"] == []
        gate.open.set()
        assert (await wait_status(c, first["id"], lambda i: i["status"] == "finished"))["answer"] == "through"


async def test_runs_cannot_see_each_others_variables_or_files(gate):
    scripts = {
        "writer": [act("secret = 'A'\nopen('note.txt', 'w').write('x')\nprint(gate())"), act("final_answer(secret)")],
        "reader": [act("import os\nfinal_answer(['secret' in globals(), os.path.exists('note.txt'), os.listdir('.')])")],
    }
    service = make_service(gate, scripts=scripts)
    async with asgi(service) as c:
        writer = (await c.post("/v1/runs", json={"task": "writer", "background": True})).json()
        await anyio.to_thread.run_sync(gate.entered.acquire)  # the writer's variable and file exist now
        reader = (await c.post("/v1/runs", json={"task": "reader"})).json()
        assert reader["answer"] == [False, False, []]
        gate.open.set()
        assert (await wait_status(c, writer["id"], lambda i: i["status"] == "finished"))["answer"] == "A"


async def test_tools_are_listed_and_chosen_per_run(gate):
    async with asgi(make_service(gate)) as c:
        assert [t["name"] for t in (await c.get("/v1/tools")).json()["data"]] == ["gate"]
        r = await c.post("/v1/runs", json={"task": "wait", "tools": [], "max_steps": 1})
        step = r.json()["steps"][0]
        assert step["error"].startswith("NameError")  # gate was not given to this run


async def test_chat_completions_facade_over_asgi():
    async with asgi(make_service()) as c:
        body = {"model": "scripted", "messages": [{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": "multiply"}]}
        r = await c.post("/v1/chat/completions", json=body)
        out = r.json()
        assert out["object"] == "chat.completion" and out["choices"][0]["message"]["content"] == "83810205"
        assert out["tinyact"]["answer"] == 83810205 and len(out["tinyact"]["steps"]) == 2
        assert out["usage"]["total_tokens"] > 0
        r = await c.post("/v1/chat/completions", json={**body, "messages": [{"role": "system", "content": "x"}]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "body"
        r = await c.post("/v1/chat/completions", json={**body, "model": "other"})
        assert r.status_code == 422 and r.json()["error"]["param"] == "body.model"


async def test_metrics_exposition():
    async with asgi(make_service()) as c:
        await c.post("/v1/runs", json={"task": "multiply"})
        r = await c.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.text
        assert metric(text, "tinyact_runs_total", end_reason="final_answer") == 1
        assert metric(text, "tinyact_step_seconds_count") == 2 and metric(text, "tinyact_step_seconds_bucket", le="+Inf") == 2
        assert metric(text, "tinyact_step_seconds_sum") > 0
        assert metric(text, "tinyact_active_sandboxes") == 0 and metric(text, "tinyact_queue_depth") == 0
        assert metric(text, "tinyact_engine_ready") == 1
        assert "# TYPE tinyact_step_seconds histogram" in text and "# TYPE tinyact_runs_total counter" in text
