"""LLMJudge against a mocked OpenAI-compatible endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tinyact.errors import EngineError
from tinyact.eval.datasets import Benchmark, Question
from tinyact.eval.judge import LLMJudge
from tinyact.eval.runner import Prediction, run_eval


def _server(reply: str, seen: list):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"choices": [{"message": {"role": "assistant", "content": reply}}]}
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def test_judge_asks_yes_no_and_records_its_metric():
    seen: list = []
    judge = LLMJudge("http://judge:8000/v1", "big-model", api_key="k", transport=_server("Yes.", seen))
    s = judge.check("Who founded Les Films du Losange?", "<answer>Barbet Schroeder</answer>", "Éric Rohmer")
    assert s.correct and s.metric == "llm_judge" and s.details["em"] == 0.0
    assert s.details["judge_model"] == "big-model"
    req = seen[0]
    assert str(req.url) == "http://judge:8000/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer k"
    body = json.loads(req.content)
    assert body["model"] == "big-model" and body["temperature"] == 0.0
    prompt = body["messages"][0]["content"]
    assert "Barbet Schroeder" in prompt and "Éric Rohmer" in prompt and "yes or no" in prompt


def test_judge_no_and_exact_match_shortcut():
    seen: list = []
    judge = LLMJudge("http://judge:8000", "m", transport=_server("no", seen))
    assert judge.url == "http://judge:8000/v1/chat/completions"
    assert not judge.check("q", "Paris", "Rome").correct
    assert judge.check("q", "the Rome", "Rome").correct  # exact match: no call needed
    assert len(seen) == 1


def test_judge_server_errors_raise_engine_error():
    judge = LLMJudge("http://judge/v1", "m", max_retries=1,
                     transport=httpx.MockTransport(lambda r: httpx.Response(503, text="down")))
    with pytest.raises(EngineError, match="503"):
        judge.ask("q", "a", "b")
    bad = LLMJudge("http://judge/v1", "m", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    with pytest.raises(EngineError, match="unexpected format"):
        bad.ask("q", "a", "b")


def test_runner_with_judge_records_llm_judge(tmp_path):
    qs = [Question("a", "Capital of France?", "Paris"), Question("b", "Capital of Italy?", "Rome")]
    bench = Benchmark(name="t", kind="qa", split="test", questions=qs, path=Path("x"))
    judge = LLMJudge("http://j/v1", "jm", transport=_server("yes", []))
    summary = run_eval(bench, lambda b: [Prediction(text="paris") for _ in b], tmp_path / "r",
                       judge=judge, progress=False)
    assert summary.metric == "llm_judge" and summary.accuracy == 1.0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["judge_model"] == "jm"
