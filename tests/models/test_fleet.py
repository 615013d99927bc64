"""FleetEngine: several model servers (real tiny HTTP servers on 127.0.0.1) behind one engine."""

from __future__ import annotations

import pytest

from tinyact.errors import EngineError
from tinyact.models.engines import load_engine
from tinyact.models.engines.fleet import FleetEngine
from tinyact.schema import Message

from .conftest import free_port
from .test_openai import CONV, Fake, reply


def convs(k: int) -> list[list[Message]]:
    return [[Message(role="user", content=f"q{i}")] for i in range(k)]


def ok(body: dict, k: int):
    return 200, reply(body["n"], text=body["messages"][-1]["content"] + "-"), {}


def test_calls_are_spread_over_the_servers():
    with Fake(ok) as a, Fake(ok) as b:
        engine = load_engine("m", engine="openai", base_url=f"{a.url},{b.url}", max_retries=0)
        assert isinstance(engine, FleetEngine) and engine.model_name == "m"
        rows = engine.generate(convs(8))
        assert [r[0].text for r in rows] == [f"q{i}-0" for i in range(8)]  # each answer in its place
        assert len(a.bodies) == len(b.bodies) == 4
        for _ in range(6):
            engine.generate([CONV])
        assert len(a.bodies) == len(b.bodies) == 7  # one call after another alternates
        engine.close()


def test_a_failing_server_is_retried_on_another_and_benched():
    with Fake(lambda body, k: (500, {"error": {"message": "boom"}}, {})) as bad, Fake(ok) as good:
        engine = load_engine("m", engine="openai", base_url=[bad.url, good.url], max_retries=0)
        rows = engine.generate(convs(4))
        assert [r[0].text for r in rows] == [f"q{i}-0" for i in range(4)]
        assert len(bad.bodies) == 2 and len(good.bodies) == 4  # bad's half went to good too
        for _ in range(4):
            engine.generate([CONV])
        assert len(bad.bodies) == 2 and len(good.bodies) == 8  # benched while the other is healthy
        engine.close()


def test_a_server_that_is_down_fails_over_and_all_down_is_one_error():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with Fake(ok) as live:
        engine = load_engine(f"openai:{dead},{live.url}", max_retries=0)  # the served model asked of the live one
        assert engine.model_name == "fake-model"
        (row,) = engine.generate([CONV])
        assert row[0].text == "Hi-0"
    with pytest.raises(EngineError):
        FleetEngine([load_engine("m", engine="openai", base_url=dead, max_retries=0)]).generate([CONV])
