"""The API on a real uvicorn server on 127.0.0.1: SSE over TCP, cancel, the openai
client against the facade, restart persistence, and one run on a real model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tinyact.serve import RunService, ServerConfig
from tests.serve.helpers import make_service, metric, uvicorn_server, wait_for
from tests.serve.server import Server



def stream_events(client: httpx.Client, body: dict):
    """Yield (event, data) as they arrive over the wire."""
    with client.stream("POST", "/v1/runs", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


def test_sse_over_tcp_arrives_step_by_step(gate):
    service = make_service(gate)
    with uvicorn_server(service) as url, httpx.Client(base_url=url, timeout=60) as c:
        seen = []
        for kind, data in stream_events(c, {"task": "stepwise"}):
            seen.append(kind)
            if kind == "run":
                run_id = data["id"]
            if kind == "step" and data["index"] == 0:
                # step 0 reached the client while step 1 is still blocked in gate()
                gate.entered.acquire(timeout=10)
                info = c.get(f"/v1/runs/{run_id}").json()
                assert info["status"] == "running" and len(info["steps"]) == 1
                gate.open.set()
        assert seen == ["run", "step", "step", "step", "final"]
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").status_code == 200


def test_cancel_while_streaming_kills_the_sandbox():
    service = make_service()
    with uvicorn_server(service) as url, httpx.Client(base_url=url, timeout=60) as c:
        started = time.monotonic()
        events = []
        for kind, data in stream_events(c, {"task": "sleep"}):
            events.append((kind, data))
            if kind == "run":
                run_id = data["id"]
                wait_for(lambda: service.active_sandboxes == 1)
                time.sleep(0.3)  # inside time.sleep(60)
                r = c.delete(f"/v1/runs/{run_id}")
                assert r.status_code == 200 and r.json()["end_reason"] == "cancelled"
        assert events[-1][0] == "final" and events[-1][1]["end_reason"] == "cancelled"
        assert time.monotonic() - started < 20
        assert metric(c.get("/metrics").text, "tinyact_active_sandboxes") == 0
        assert c.get(f"/v1/runs/{run_id}").json()["end_reason"] == "cancelled"


def test_openai_client_against_the_facade():
    import openai

    service = make_service(api_keys=("sk-test",))
    with uvicorn_server(service) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
        assert [m.id for m in client.models.list()] == ["scripted"]
        resp = client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "multiply"}], extra_body={"max_steps": 3}
        )
        assert resp.choices[0].message.content == "83810205" and resp.choices[0].finish_reason == "stop"
        ext = resp.model_extra["tinyact"]
        assert ext["end_reason"] == "final_answer" and [s["index"] for s in ext["steps"]] == [0, 1]
        assert resp.usage.total_tokens > 0

        chunks = list(client.chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "multiply"}], stream=True
        ))
        content = "".join(ch.choices[0].delta.content or "" for ch in chunks)
        assert content == "83810205" and chunks[-1].choices[0].finish_reason == "stop"
        steps = [ch.model_extra["tinyact"]["steps"][0]["index"] for ch in chunks
                 if (ch.model_extra or {}).get("tinyact") and ch.model_extra["tinyact"]["steps"]]
        assert steps == [0, 1]

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="scripted", messages=[{"role": "user", "content": "quick"}])
        with pytest.raises(openai.UnprocessableEntityError, match="not served here"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "quick"}])


# -------------------------------------------------------------- restarts


def start(tmp: Path, on_restart: str) -> Server:
    # one replica id across restarts: the restarted process takes its own runs back at once
    return Server(tmp, str(tmp / "runs.sqlite"), "--on-restart", on_restart, "--replica-id", "solo").wait_ready()


def start_slow_run(server: Server) -> str:
    assert server.client.post("/v1/runs", json={"task": "quick"}).json()["answer"] == 42
    slow = server.client.post("/v1/runs", json={"task": "slow", "background": True}).json()
    # step 0 committed; step 1 is blocked in gate()
    wait_for(lambda: len(server.client.get(f"/v1/runs/{slow['id']}").json()["steps"]) == 1)
    time.sleep(0.3)
    return slow["id"]


def test_restart_marks_unfinished_runs_interrupted(tmp_path: Path):
    server = start(tmp_path, "interrupt")
    slow_id = start_slow_run(server)
    quick_id = server.client.get("/v1/runs").json()["data"][1]["id"]
    server.stop(signal.SIGTERM)  # a graceful stop mid-run
    server = start(tmp_path, "interrupt")
    try:
        quick = server.client.get(f"/v1/runs/{quick_id}").json()
        assert quick["status"] == "finished" and quick["answer"] == 42 and quick["trajectory"]["steps"]
        slow = server.client.get(f"/v1/runs/{slow_id}").json()
        assert slow["status"] == "interrupted" and len(slow["steps"]) == 1 and slow["answer"] is None
        assert metric(server.client.get("/metrics").text, "tinyact_runs_total", end_reason="interrupted") == 1
        assert server.client.delete(f"/v1/runs/{slow_id}").status_code == 409
    finally:
        server.stop(signal.SIGTERM)


def test_restart_resumes_unfinished_runs_when_configured(tmp_path: Path):
    server = start(tmp_path, "resume")
    slow_id = start_slow_run(server)
    server.stop(signal.SIGKILL)  # a crash mid-run
    (tmp_path / "gate").touch()
    server = start(tmp_path, "resume")
    try:
        done = wait_for(lambda: (i := server.client.get(f"/v1/runs/{slow_id}").json())["status"] == "finished" and i)
        # x = 41 from step 0 was rebuilt by replay, the blocked step ran again, then step 2 answered
        assert done["answer"] == 42 and done["end_reason"] == "final_answer"
        assert [s["index"] for s in done["steps"]] == [0, 1, 2] and "open" in done["steps"][1]["observation"]
    finally:
        server.stop(signal.SIGTERM)


# ------------------------------------------------------------ real model


@pytest.mark.slow
def test_one_run_on_the_real_smollm2_model(smol_engine, tmp_path: Path):
    config = ServerConfig(db=str(tmp_path / "runs.sqlite"), default_max_steps=1,
                          agent_options={"max_tokens": 48, "prompt": "short"})
    service = RunService(smol_engine, config=config)
    with uvicorn_server(service) as url, httpx.Client(base_url=url, timeout=600) as c:
        r = c.post("/v1/runs", json={"task": "What is 2 + 3? Use code."})
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "finished" and body["end_reason"] in ("final_answer", "max_steps")
        assert len(body["steps"]) == 1 and body["trajectory"]["usage"]["completion_tokens"] > 0
        assert metric(c.get("/metrics").text, "tinyact_active_sandboxes") == 0


def test_cli_serve_bad_option_is_one_clear_line(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "tinyact.cli", "serve", "--on-restart", "later", "--db", str(tmp_path / "x.db")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == "error: on_restart must be interrupt or resume, got 'later'"
    help_ = subprocess.run([sys.executable, "-m", "tinyact.cli", "serve", "--help"], capture_output=True,
                           text=True, cwd=tmp_path, timeout=120)
    assert "--engine-url" in help_.stdout and "--on-restart" in help_.stdout
