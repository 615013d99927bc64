"""BatchingEngine: concurrent callers share inner calls and get their own results."""

from __future__ import annotations

import threading

import pytest

from tinyact.errors import EngineError
from tinyact.models.engines.batching import BatchingEngine
from tinyact.models.engines.scripted import ScriptedEngine
from tinyact.schema import Message, SamplingParams


class Recording(ScriptedEngine):
    """Answers each conversation with its own task; records every call's size."""

    def __init__(self, delay: float = 0.05) -> None:
        super().__init__(lambda task: [f"echo {task}"], delay=delay)
        self.sizes: list[int] = []
        self.fail = False

    def generate(self, conversations, **kw):
        self.sizes.append(len(conversations))
        if self.fail:
            raise EngineError("model server down")
        return super().generate(conversations, **kw)


def conv(task: str) -> list[Message]:
    return [Message(role="user", content=task)]


def call_concurrently(engine, count: int, **kw) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = engine.generate([conv(f"task {i}")], **kw)
        except Exception as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_eight_concurrent_callers_share_inner_calls_and_get_their_own_results():
    inner = Recording()
    engine = BatchingEngine(inner, window_ms=20)
    results = call_concurrently(engine, 8, n=2, stop=["<end_code>"])
    engine.close()
    assert len(inner.sizes) < 8 and sum(inner.sizes) == 8, inner.sizes
    assert max(inner.sizes) > 1
    for i, result in enumerate(results):
        assert [c.text for c in result[0]] == [f"echo task {i}"] * 2


def test_different_sampling_is_not_merged():
    inner = Recording(delay=0.0)
    engine = BatchingEngine(inner, window_ms=50)
    barrier = threading.Barrier(2)
    out = {}

    def worker(name: str, temperature: float) -> None:
        barrier.wait()
        out[name] = engine.generate([conv(name)], sampling=SamplingParams(temperature=temperature))

    threads = [threading.Thread(target=worker, args=(f"t{t}", t)) for t in (0.0, 0.7)]
    [t.start() for t in threads]
    [t.join(10) for t in threads]
    engine.close()
    assert inner.sizes == [1, 1]
    assert out["t0.0"][0][0].text == "echo t0.0" and out["t0.7"][0][0].text == "echo t0.7"


def test_max_batch_bounds_each_inner_call_and_prefixes_are_routed():
    inner = Recording()
    engine = BatchingEngine(inner, max_batch=3, window_ms=20)
    results = call_concurrently(engine, 7)
    assert max(inner.sizes) <= 3 and sum(inner.sizes) == 7
    (res,) = engine.generate([conv("p")], prefix="echo")
    assert res[0].text == "echo p"
    engine.close()


def test_a_failing_inner_call_fails_every_caller_of_its_batch():
    inner = Recording()
    inner.fail = True
    engine = BatchingEngine(inner, window_ms=20)
    results = call_concurrently(engine, 4)
    engine.close()
    assert all(isinstance(r, EngineError) for r in results)


def test_bad_settings_are_clear_errors():
    from tinyact.errors import ConfigError

    with pytest.raises(ConfigError, match="max_batch must be >= 1, got 0"):
        BatchingEngine(Recording(), max_batch=0)
