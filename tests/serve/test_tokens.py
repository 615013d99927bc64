"""Token streaming through the API on a real uvicorn server: SSE ``token`` events on
/v1/runs, a run's events by id, and the openai client reading deltas from the facade."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.serve.helpers import uvicorn_server
from tinyact.models.engines.scripted import ScriptedEngine, act
from tinyact.serve import RunService, ServerConfig

SCRIPTS = {"double": [act("x = 21\nprint(x)", "I set x first"), act("final_answer(x * 2)", "then double it")]}


def sse(client: httpx.Client, method: str, path: str, **kw):
    with client.stream(method, path, **kw) as r:
        assert r.status_code == 200, r.read()
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield time.monotonic(), kind, json.loads(line[6:])


def scripted_service(**config) -> RunService:
    return RunService(ScriptedEngine(SCRIPTS, token_delay=0.01), config=ServerConfig(exec_timeout=60, **config))


def test_sse_token_events_come_before_their_step_then_replay_by_id():
    with uvicorn_server(scripted_service()) as url, httpx.Client(base_url=url, timeout=60) as c:
        events = list(sse(c, "POST", "/v1/runs", json={"task": "double", "stream": True, "tokens": True}))
        kinds = [k for _, k, _ in events]
        assert kinds[0] == "run" and kinds[-1] == "final"
        for index in (0, 1):
            step_at = next(t for t, k, d in events if k == "step" and d["index"] == index)
            tokens = [(t, d) for t, k, d in events if k == "token" and d["step"] == index]
            assert len(tokens) > 5 and all(t < step_at for t, _ in tokens)
            step = next(d for _, k, d in events if k == "step" and d["index"] == index)
            assert "".join(d["text"] for _, d in tokens) == step["model_output"]
            assert {(d["candidate"], d["of"]) for _, d in tokens} == {(0, 1)}
        run_id = events[0][2]["id"]

        # Without tokens: no token events.
        plain = [k for _, k, _ in sse(c, "POST", "/v1/runs", json={"task": "double", "stream": True})]
        assert "token" not in plain and plain.count("step") == 2

        # A finished run's events by id: the steps and the end, from the store.
        again = [(k, d) for _, k, d in sse(c, "GET", f"/v1/runs/{run_id}/events")]
        assert [k for k, _ in again] == ["run", "step", "step", "final"] and again[-1][1]["answer"] == 42
        assert c.get("/v1/runs/run_nope/events").status_code == 404


def test_openai_client_reads_token_deltas():
    with uvicorn_server(scripted_service()) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="tinyact", messages=[{"role": "user", "content": "double"}],
                                                stream=True)
        reasoning, content, order = [], [], []
        for chunk in stream:
            delta = chunk.choices[0].delta
            ext = (chunk.model_extra or {}).get("tinyact") or {}
            if (delta.model_extra or {}).get("reasoning_content"):
                reasoning.append(delta.model_extra["reasoning_content"])
                order.append("token")
                assert ext["token"]["candidate"] == 0
            if ext.get("steps"):
                order.append("step")
            if delta.content:
                content.append(delta.content)
        assert "".join(content) == "42"  # content is the answer, as without streaming
        assert "".join(reasoning).startswith("Thought: I set x first") and "then double it" in "".join(reasoning)
        assert order.index("step") > 5 and order[:5] == ["token"] * 5

        stream = client.chat.completions.create(
            model="tinyact", messages=[{"role": "user", "content": "double"}], stream=True,
            extra_body={"stream_tokens": "content"})
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert text.startswith("Thought: I set x first") and text.endswith("\n\n42")


@pytest.mark.slow
def test_real_model_token_deltas_arrive_before_the_step(smol_engine):
    """smollm2-135m on transformers behind the facade: deltas while it generates."""
    config = ServerConfig(default_max_steps=1, exec_timeout=60, agent_options={"max_tokens": 48, "prompt": "short"})
    with uvicorn_server(RunService(smol_engine, config=config)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=900)
        arrivals = []
        for chunk in client.chat.completions.create(
                model="tinyact", messages=[{"role": "user", "content": "Print the numbers 1 to 5 with a loop."}],
                stream=True):
            ext = (chunk.model_extra or {}).get("tinyact") or {}
            if (chunk.choices[0].delta.model_extra or {}).get("reasoning_content"):
                arrivals.append((time.monotonic(), "token"))
            elif ext.get("steps"):
                arrivals.append((time.monotonic(), "step"))
        step_at = next(t for t, k in arrivals if k == "step")
        tokens = [t for t, k in arrivals if k == "token" and t < step_at]
        assert len(tokens) >= 5 and tokens[-1] - tokens[0] > 0.2, arrivals
