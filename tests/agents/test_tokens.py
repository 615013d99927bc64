"""Agent.stream(tokens=True): model text arrives piece by piece before its step ends."""

from __future__ import annotations

import time

import pytest

from tinyact import Agent
from tinyact.agents import Token
from tinyact.models.engines import ReplayEngine
from tinyact.models.engines.scripted import ScriptedEngine, act
from tinyact.schema import Step


def test_tokens_come_before_their_step_and_add_up_to_its_text():
    engine = ScriptedEngine({"t": [act("x = 6 * 7\nprint(x)"), act("final_answer(x)")]}, token_delay=0.01)
    items = []
    with Agent(engine) as agent:
        for item in agent.stream("t", tokens=True):
            items.append((time.monotonic(), item))
    steps = [(t, i) for t, i in items if isinstance(i, Step)]
    assert [s.index for _, s in steps] == [0, 1]
    for when, step in steps:
        tokens = [(t, i) for t, i in items if isinstance(i, Token) and i.step == step.index]
        assert len(tokens) > 5 and all(t < when for t, _ in tokens)
        assert "".join(tok.text for _, tok in tokens) == step.model_output  # ScriptedEngine: no stop string to cut


def test_k_samples_stream_candidate_zero_and_say_so():
    script = [[act("final_answer(1)"), act("final_answer(2)"), act("final_answer(2)")]]
    with Agent(ReplayEngine(script), samples=3, temperature=0.5) as agent:
        items = list(agent.stream("t", tokens=True))
    tokens = [i for i in items if isinstance(i, Token)]
    assert {(t.candidate, t.of) for t in tokens} == {(0, 3)}
    assert "".join(t.text for t in tokens) == script[0][0]  # the first candidate, although 2 won the vote
    assert items[-1].answer == 2


def test_without_tokens_nothing_changes():
    with Agent(ReplayEngine([act("final_answer(1)")])) as agent:
        items = list(agent.stream("t"))
    assert not any(isinstance(i, Token) for i in items)


@pytest.mark.slow
def test_real_model_tokens_arrive_before_the_step_ends(smol_engine):
    """smollm2-135m on transformers: its text reaches us while it generates."""
    items = []
    with Agent(smol_engine, max_steps=1, max_tokens=48) as agent:
        for item in agent.stream("Write a Python loop that prints the numbers 1 to 5.", tokens=True):
            items.append((time.monotonic(), item))
    step_at, step = next((t, i) for t, i in items if isinstance(i, Step))
    tokens = [(t, i) for t, i in items if isinstance(i, Token) and i.step == 0]
    assert len(tokens) >= 5, tokens
    assert all(t < step_at for t, _ in tokens)
    first, last = tokens[0][0], tokens[-1][0]
    assert last - first > 0.2  # spread over the generation, not one burst at the end
    streamed = "".join(tok.text for _, tok in tokens)
    assert step.model_output.startswith(streamed.rstrip()[:20])


def test_tinyact_run_shows_the_text_as_it_is_generated(monkeypatch):
    from typer.testing import CliRunner

    import tinyact.models.engines as engines
    from tinyact.cli import app

    engine = ScriptedEngine({"t": [act("final_answer(7)", "a streamed thought")]})
    monkeypatch.setattr(engines, "load_engine", lambda *a, **kw: engine)
    r = CliRunner().invoke(app, ["run", "t", "--tokens", "--sandbox", "process"])
    assert r.exit_code == 0, r.output
    streamed = r.output.index("```py")  # the raw model text (with its code fence) first, then the step panel
    assert r.output.index("step 0") > streamed and "Answer: 7" in r.output
    r = CliRunner().invoke(app, ["run", "t", "--sandbox", "process"])  # not a terminal: no raw text
    assert r.exit_code == 0 and "```py" not in r.output and "step 0" in r.output
