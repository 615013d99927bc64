"""Engines' streaming call (``generate_stream``): pieces of the first sample as they are made,
never a stop string, and the same completions as ``generate``."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tinyact.models.engines.base import StopFilter, generate_streaming
from tinyact.models.engines.batching import BatchingEngine
from tinyact.models.engines.openai import OpenAIEngine
from tinyact.models.engines.replay import ReplayEngine
from tinyact.schema import Message, SamplingParams

from .conftest import require_vllm

CONV = [Message(role="user", content="Count to five.")]


def test_stop_filter_holds_back_what_may_be_a_stop_string():
    out: list[str] = []
    f = StopFilter(out.append, ["<end_code>", "Observation:"])
    for piece in ["print(1)\n``", "`<en", "d_co", "de>after"]:
        f(piece)
    f.flush()
    assert "".join(out) == "print(1)\n```" and out[0] == "print(1)\n``"
    out.clear()
    f = StopFilter(out.append, ["<end_code>"])
    for piece in ["a <en", "ough"]:
        f(piece)
    f.flush()
    assert out == ["a ", "<enough"]


def test_fallback_for_engines_without_streaming_reports_the_text_once():
    class Plain:  # generate only
        name = "plain"
        inner = ReplayEngine(["one two three"])

        def generate(self, *a, **kw):
            return self.inner.generate(*a, **kw)

    pieces: list[str] = []
    (c,) = generate_streaming(Plain(), CONV, on_token=pieces.append)
    assert pieces == ["one two three"] and c.text == "one two three"


def test_batching_engine_streams_through_the_inner_engine():
    engine = BatchingEngine(ReplayEngine(["alpha beta gamma"]))
    try:
        pieces: list[str] = []
        (c,) = engine.generate_stream(CONV, on_token=pieces.append)
        assert pieces == ["alpha", " beta", " gamma"] and c.text == "alpha beta gamma"
    finally:
        engine.close()


class SSEServer:
    """A chat-completions server on 127.0.0.1 that streams n choices, one delta every 50 ms."""

    def __init__(self, pieces: list[str]) -> None:
        self.bodies: list[dict] = []
        server = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in pieces:
                    for i in range(body["n"]):
                        delta = {"choices": [{"index": i, "delta": {"content": f"{piece}" if i == 0 else piece.upper()}}]}
                        self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(0.05)
                for i in range(body["n"]):
                    end = {"choices": [{"index": i, "delta": {}, "finish_reason": "stop", "stop_reason": "<end_code>"}]}
                    self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4 * body["n"]}}
                self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_engine_streams_choice_zero_as_it_arrives():
    server = SSEServer(["Thought:", " one", " two", " three"])
    try:
        engine = OpenAIEngine("fake", base_url=server.url, max_retries=0)
        seen: list[tuple[float, str]] = []
        start = time.monotonic()
        comps = engine.generate_stream(CONV, n=2, sampling=SamplingParams(temperature=0.5, max_tokens=20),
                                       stop=["<end_code>"], on_token=lambda t: seen.append((time.monotonic(), t)))
        done = time.monotonic()
    finally:
        server.close()
    body = server.bodies[0]
    assert body["stream"] is True and body["n"] == 2 and body["stream_options"] == {"include_usage": True}
    assert [t for _, t in seen] == ["Thought:", " one", " two", " three"]
    assert seen[0][0] - start < done - start - 0.1  # the first piece came well before the end
    assert [c.text for c in comps] == ["Thought: one two three", "THOUGHT: ONE TWO THREE"]
    assert comps[0].stop == "<end_code>" and comps[0].prompt_tokens == 9 and comps[0].completion_tokens == 4


def assert_stream_matches_generate(engine) -> None:
    """Greedy with a stop string: the streamed completion is ``generate``'s, and its pieces add up to it."""
    s = SamplingParams(temperature=0, max_tokens=24)
    pieces: list[str] = []
    (streamed,) = engine.generate_stream(CONV, sampling=s, stop=["5"], on_token=pieces.append)
    (plain,) = engine.generate([CONV], sampling=s, stop=["5"])[0]
    assert streamed.text == plain.text and streamed.stop == plain.stop
    assert len(pieces) > 2 and "".join(pieces) == streamed.text  # all of it, nothing past the stop string


@pytest.mark.slow
def test_transformers_stream_matches_generate(smol_engine):
    assert_stream_matches_generate(smol_engine)


@pytest.mark.slow
@pytest.mark.vllm
@require_vllm
def test_vllm_stream_matches_generate(vllm_engine):
    s = SamplingParams(temperature=0, max_tokens=24)
    pieces: list[str] = []
    (streamed, _) = vllm_engine.generate_stream(CONV, n=2, sampling=SamplingParams(temperature=0.7, max_tokens=24,
                                                                                  seed=3), on_token=pieces.append)
    assert len(pieces) > 2 and "".join(pieces) == streamed.text
    (g,) = vllm_engine.generate_stream(CONV, sampling=s, on_token=lambda t: None)
    assert g.text == vllm_engine.generate([CONV], sampling=s)[0][0].text


@pytest.mark.slow
def test_llamacpp_stream_matches_generate(llamacpp_engine):
    assert_stream_matches_generate(llamacpp_engine)
    # k samples: sample 0 is the one streamed
    pieces: list[str] = []
    row = llamacpp_engine.generate_stream(CONV, n=3, sampling=SamplingParams(temperature=0.9, max_tokens=16, seed=5),
                                          on_token=pieces.append)
    assert len(row) == 3 and "".join(pieces) == row[0].text
