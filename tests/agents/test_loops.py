"""Loop detection, driven by ReplayEngine, executing in the real sandbox."""

from __future__ import annotations

from tinyact import Agent, ReplayEngine
from tinyact.agents.loops import action_key, repeated_step


def act(code: str, thought: str = "go") -> str:
    return f"Thought: {thought}\nCode:\n```py\n{code}\n```"


def test_identical_means_the_same_syntax_tree():
    assert action_key('print(search("a b"))') == action_key('print( search( "a b" ) )  # again\n')
    assert action_key('print(search("a b"))') != action_key('print(search("a c"))')
    assert action_key("if x:\n  y(") == action_key("  if x:\n      y(\n")  # unparsable: stripped lines
    assert repeated_step("x = 1", ["print(1)", "", "x=1"]) == 3
    assert repeated_step("x = 2", ["print(1)", "x=1"]) is None and repeated_step("", [""]) is None


def test_a_repeated_action_is_named_in_its_observation():
    search = 'print("Jaws director: Steven Spielberg")'
    engine = ReplayEngine([act(search), act(search + "  # look again"), act("final_answer('Spielberg')")])
    result = Agent(engine, max_steps=5).run("Who directed Jaws?")
    first, second, last = result.steps
    assert "Steven Spielberg" in first.observation and "identical" not in first.observation
    assert "Steven Spielberg" in second.observation
    assert "identical to your step 1" in second.observation and "Do not repeat it" in second.observation
    assert "identical" not in last.observation and result.answer == "Spielberg"
    # the model saw the note in the conversation of its next call
    assert "identical to your step 1" in engine.calls[2]["conversations"][0][-1].content


def test_with_k_greater_than_one_the_vote_prefers_a_new_action():
    first = "n = 5\nprint(n)"
    engine = ReplayEngine([
        [act(first)] * 3,
        [act(first), act("n = 5\nprint( n )"), act("n = n * 2\nprint(n)")],  # two repeats would win the vote
        [act("final_answer(n)")] * 3,
    ])
    result = Agent(engine, samples=3, temperature=0.5).run("double five")
    step = result.steps[1]
    assert "10" in step.observation and "identical" not in step.observation
    chosen = [c for c in step.candidates if c.chosen]
    assert [c.index for c in step.candidates] == [0, 1, 2] and [c.index for c in chosen] == [2]
    repeats = step.candidates[:2]
    assert all(c.result is None and c.action.ok and c.outcome_key is None for c in repeats)  # set aside, not run
    assert step.candidates[2].result.stdout.strip() == "10" and step.candidates[2].group_size == 1
    assert result.answer == 10  # without the preference the two repeats win the vote and n stays 5


def test_when_every_candidate_repeats_they_vote_as_usual_and_the_note_says_so():
    engine = ReplayEngine([
        [act("print(7)")] * 2,
        [act("print(7)"), act("print( 7 )")],
        [act("final_answer(7)")] * 2,
    ])
    result = Agent(engine, samples=2, temperature=0.5).run("seven")
    step = result.steps[1]
    assert all(c.result is not None for c in step.candidates) and step.candidates[0].chosen
    assert step.candidates[0].group_size == 2
    assert "identical to your step 1" in step.observation and result.answer == 7


def test_repeat_notes_off_is_the_ablation_no_note_and_no_preference():
    search = 'print("Jaws director: Steven Spielberg")'
    engine = ReplayEngine([act(search), act(search), act("final_answer('Spielberg')")])
    result = Agent(engine, repeat_notes=False).run("Who directed Jaws?")
    assert "Steven Spielberg" in result.steps[1].observation and "identical" not in result.steps[1].observation
    assert "identical" not in engine.calls[2]["conversations"][0][-1].content
    first = "n = 5\nprint(n)"
    engine = ReplayEngine([
        [act(first)] * 3,
        [act(first), act("n = 5\nprint( n )"), act("n = n * 2\nprint(n)")],
        [act("final_answer(n)")] * 3,
    ])
    result = Agent(engine, samples=3, temperature=0.5, repeat_notes=False).run("double five")
    assert all(c.result is not None for c in result.steps[1].candidates)  # every candidate ran and voted
    assert result.answer == 5  # the two repeats won the vote, as before loop detection
