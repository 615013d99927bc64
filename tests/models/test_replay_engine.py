"""ReplayEngine: scripted outputs in order, loud on surprises."""

from __future__ import annotations

import pytest

from tinyact.errors import ReplayError
from tinyact.models.engines import ReplayEngine
from tinyact.schema import Message, Step, CodeAction, Candidate, Trajectory

CONV = [Message(role="user", content="hi")]


def test_returns_script_in_order_and_applies_stop():
    engine = ReplayEngine(["a<end_code>tail", "b"])
    (first,) = engine.generate([CONV], stop=["<end_code>"])
    assert first[0].text == "a" and first[0].stop == "<end_code>" and first[0].finish_reason == "stop"
    (second,) = engine.generate([CONV], stop=["<end_code>"])
    assert second[0].text == "b" and second[0].finish_reason == "eos"
    engine.assert_consumed()


def test_unexpected_call_and_unconsumed_script_fail_loudly():
    engine = ReplayEngine(["only"])
    engine.generate([CONV])
    with pytest.raises(ReplayError, match="unexpected call #2"):
        engine.generate([CONV])
    with pytest.raises(ReplayError, match="never requested"):
        with ReplayEngine(["x", "y"]) as e:
            e.generate([CONV])


def test_n_samples_and_batches():
    engine = ReplayEngine([["s1", "s2", "s3"], "same"])
    out = engine.generate([CONV, CONV], n=3)
    assert [c.text for c in out[0]] == ["s1", "s2", "s3"]
    assert [c.text for c in out[1]] == ["same"] * 3
    with pytest.raises(ReplayError, match="has 2 samples, asked for n=3"):
        ReplayEngine([["a", "b"]]).generate([CONV], n=3)


def test_prefix_is_kept_at_the_start():
    engine = ReplayEngine(["continuation", "Thought: go on"])
    assert engine.generate([CONV], prefix="Thought: ")[0][0].text == "Thought: continuation"
    assert engine.generate([CONV], prefix="Thought: ")[0][0].text == "Thought: go on"


def test_from_trajectory_replays_candidates_then_outputs():
    action = CodeAction(thought="t", code="print(1)")
    steps = [
        Step(index=0, model_output="one", action=action, observation="",
             candidates=[Candidate(index=1, text="c1", action=action), Candidate(index=0, text="c0", action=action)]),
        Step(index=1, model_output="two", action=action, observation=""),
    ]
    engine = ReplayEngine.from_trajectory(Trajectory(task="x", steps=steps))
    assert [c.text for c in engine.generate([CONV], n=2)[0]] == ["c0", "c1"]
    assert engine.generate([CONV])[0][0].text == "two"
    engine.assert_consumed()
