"""OpenAIEngine: retries, timeouts and bad replies against tiny local HTTP servers; LoRA via a real vLLM server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tinyact.errors import EngineError
from tinyact.models.engines import load_engine
from tinyact.models.engines.openai import OpenAIEngine
from tinyact.schema import Message, SamplingParams

from .conftest import LORA_NAME, free_port, require_vllm

CONV = [Message(role="user", content="Hi")]


def reply(n: int, text: str = "hello", finish: str = "stop", **extra) -> dict:
    choices = [{"index": i, "message": {"role": "assistant", "content": f"{text}{i}"}, "finish_reason": finish, **extra}
               for i in range(n)]  # fmt: skip
    return {"choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n}}


class Fake:
    """A tiny HTTP server on 127.0.0.1 answering each POST with ``handler(body, call_no) -> (status, json, headers)``."""

    def __init__(self, handler: Callable[[dict, int], tuple[int, dict, dict]]) -> None:
        self.handler, self.bodies = handler, []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _answer(self, status, payload, headers):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left (test_timeout_...)

            def do_GET(self):
                self._answer(200, {"data": [{"id": "fake-model"}]}, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                self._answer(*fake.handler(body, len(fake.bodies)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_retries_503_then_succeeds():
    with Fake(lambda body, k: (503, {"error": {"message": "busy"}}, {}) if k <= 2 else (200, reply(body["n"]), {})) as f:
        engine = OpenAIEngine("m", base_url=f.url)
        (outs,) = engine.generate([CONV], n=2, sampling=SamplingParams(temperature=0.5))
    assert len(f.bodies) == 3
    assert [c.text for c in outs] == ["hello0", "hello1"]
    assert outs[0].prompt_tokens == 7 and outs[0].completion_tokens == 3  # shared out of usage
    assert outs[0].finish_reason == "eos"


def test_429_honours_retry_after():
    with Fake(lambda body, k: (429, {}, {"Retry-After": "0.3"}) if k == 1 else (200, reply(1), {})) as f:
        started = time.monotonic()
        OpenAIEngine("m", base_url=f.url).generate([CONV])
        assert time.monotonic() - started >= 0.3 and len(f.bodies) == 2


def test_gives_up_after_max_retries_with_the_server_message():
    dead = Fake(lambda body, k: (500, {"error": {"message": "engine dead"}}, {}))
    with dead as f, pytest.raises(EngineError, match="answered 500: engine dead"):
        OpenAIEngine("m", base_url=f.url, max_retries=2).generate([CONV])
    assert len(f.bodies) == 3


def test_400_is_not_retried():
    bad = Fake(lambda body, k: (400, {"error": {"message": "bad n"}}, {}))
    with bad as f, pytest.raises(EngineError, match="answered 400: bad n"):
        OpenAIEngine("m", base_url=f.url).generate([CONV])
    assert len(f.bodies) == 1


def test_fewer_choices_than_asked_is_an_error():
    one = Fake(lambda body, k: (200, reply(1), {}))
    with one as f, pytest.raises(EngineError, match=r"returned 1 choice\(s\) for n=3"):
        OpenAIEngine("m", base_url=f.url).generate([CONV], n=3, sampling=SamplingParams(temperature=1.0))


def test_a_reply_that_is_not_json_is_a_clear_error():
    with Fake(lambda body, k: (200, b"not json", {})) as f, pytest.raises(EngineError, match="not a JSON reply"):
        OpenAIEngine("m", base_url=f.url, max_retries=0).generate([CONV])


def test_server_down_is_a_clear_error():
    engine = OpenAIEngine("m", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    with pytest.raises(EngineError, match="cannot reach the model server .* is it running"):
        engine.generate([CONV])


def test_timeout_is_retried_then_reported():
    def slow(body, k):
        time.sleep(0.5)
        return 200, reply(1), {}

    with Fake(slow) as f, pytest.raises(EngineError, match="timed out after 2 tries"):
        OpenAIEngine("m", base_url=f.url, timeout=0.1, max_retries=1).generate([CONV])


def test_request_body_stop_prefix_and_greedy_copies():
    def answer(body, k):
        return 200, reply(body["n"], text="x", finish="stop", stop_reason="END"), {}

    with Fake(answer) as f:
        engine = OpenAIEngine("m", base_url=f.url)
        out = engine.generate([CONV, CONV], n=3, stop=["END"], prefix=[None, "Thought:"])
    first, second = f.bodies[0], f.bodies[1]
    by_prefix = {len(b["messages"]): b for b in (first, second)}
    plain, cont = by_prefix[1], by_prefix[2]
    assert plain["n"] == 1 and plain["temperature"] == 0 and plain["stop"] == ["END"]  # greedy: one sample, repeated
    assert "continue_final_message" not in plain
    assert cont["messages"][-1] == {"role": "assistant", "content": "Thought:"}
    assert cont["continue_final_message"] is True and cont["add_generation_prompt"] is False
    assert [c.text for c in out[0]] == ["x0"] * 3 and [c.text for c in out[1]] == ["Thought:x0"] * 3
    assert out[0][0].finish_reason == "stop" and out[0][0].stop == "END"


def test_stop_string_left_in_text_is_cut_and_url_model_is_discovered():
    with Fake(lambda body, k: (200, reply(1, text="abc STOP more"), {})) as f:
        engine = load_engine(f"openai:{f.url}")
        assert engine.model_name == "fake-model" and engine.base_url == f.url
        (c,), = engine.generate([CONV], stop=["STOP"])
    assert c.text == "abc " and c.finish_reason == "stop" and c.stop == "STOP"


def test_base_url_from_environment(monkeypatch):
    monkeypatch.setenv("TINYACT_ENGINE_URL", "http://127.0.0.1:9/v1/")
    assert OpenAIEngine("m").base_url == "http://127.0.0.1:9/v1"


@pytest.mark.slow
@pytest.mark.vllm
@require_vllm
def test_lora_adapter_served_by_vllm(vllm_server, openai_engine):
    s = SamplingParams(temperature=0, max_tokens=12)
    conv = [Message(role="user", content="Write one short sentence about the sea.")]
    with OpenAIEngine(LORA_NAME, base_url=vllm_server.url, timeout=120) as adapted:
        a = adapted.generate([conv], sampling=s)[0][0]
    base = openai_engine.generate([conv], sampling=s)[0][0]
    assert a.text and a.completion_tokens > 0 and a.text != base.text
