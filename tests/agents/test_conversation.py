"""A conversation across runs: earlier turns as context, their sandbox state replayed; step timings."""

from __future__ import annotations

from tinyact import Agent
from tinyact.agents import committed_code, to_messages
from tinyact.models.engines.scripted import ScriptedEngine, act


def test_second_turn_sees_the_first_turns_messages_and_variables():
    engine = ScriptedEngine({
        "multiply 6 by 7": [act("x = 6 * 7\nprint(x)"), act("final_answer(x)")],
        "now double it": [act("final_answer(x * 2)")],
    }, delay=0.05)
    seen = []
    inner = engine.generate

    def spy(conversations, **kw):
        seen.append([m.content if hasattr(m, "content") else m["content"] for m in conversations[0]])
        return inner(conversations, **kw)

    engine.generate = spy  # record what the model was shown; the engine still answers
    with Agent(engine) as agent:
        first = agent.run("multiply 6 by 7")
        assert first.answer == 42
        history = to_messages(first.trajectory)[1:]
        second = agent.run("now double it", history=history, setup=committed_code(first.trajectory))
    assert second.answer == 84 and second.end_reason == "final_answer"
    assert committed_code(first.trajectory) == ["x = 6 * 7\nprint(x)", "final_answer(x)"]
    shown = seen[-1]
    assert shown[1] == "New task:\nmultiply 6 by 7" and shown[-1] == "New task:\nnow double it"
    assert any("x = 6 * 7" in text for text in shown[2:-1])  # turn 1's code is in the context
    # model_seconds is the engine call's time (the engine sleeps 50 ms per call)
    assert all(s.model_seconds >= 0.05 for s in first.steps + second.steps)


def test_without_setup_the_variable_is_gone():
    engine = ScriptedEngine({"now double it": [act("final_answer(x * 2)"), act("final_answer('no x')")]})
    with Agent(engine, max_steps=2) as agent:
        result = agent.run("now double it")
    assert result.steps[0].error is not None and "NameError" in result.steps[0].error
    assert result.answer == "no x"
