"""Self-consistency at the select step: forked candidates, outcome votes, no re-runs."""

from __future__ import annotations

import pytest

from tinyact import Agent, ReplayEngine
from tinyact.agents.consistency import outcome_key
from tinyact.schema import ExecResult


def act(code: str) -> str:
    return f"Thought: go\nCode:\n```py\n{code}\n```"


def run(script, k: int, **kw):
    engine = ReplayEngine(script)
    agent = Agent(engine, samples=k, temperature=0.4, **kw)
    return agent.run("task"), engine


def test_reference_bug_shared_executor_cannot_happen():
    # The reference ran 8 candidates in one interpreter and then the winner again: it observed 9.
    result, _ = run([act("x = 0"), [act("x = x + 1\nprint(x)")] * 8, act("final_answer(x)")], k=8)
    assert result.steps[1].observation.startswith("Execution logs:\n1\n")
    assert result.answer == 1  # the session holds x == 1: the winner ran once, the losers left no trace


def test_reference_bug_vote_on_final_answer_values():
    # Printed output is empty for all three; the reference tied and took the first (1).
    result, _ = run([[act("final_answer(1)"), act("final_answer(2)"), act("final_answer(2)")]], k=3)
    assert result.answer == 2
    cands = result.steps[0].candidates
    assert [c.chosen for c in cands] == [False, True, False]
    assert [c.group_size for c in cands] == [1, 2, 2]


def test_equal_values_of_different_types_vote_together():
    result, _ = run([[act("final_answer('7')"), act("final_answer(7)"), act("final_answer(8)")]], k=3)
    assert result.answer == "7"
    assert result.steps[0].candidates[1].group_size == 2


def test_tie_goes_to_the_earliest_candidate():
    result, _ = run([[act("print('b')"), act("print('a')"), act("print('a')"), act("print('b')")],
                     act("final_answer(0)")], k=4)
    assert [c.chosen for c in result.steps[0].candidates] == [True, False, False, False]


def test_all_invalid_keeps_the_first_and_observes_its_error():
    result, _ = run([["no code here", act("1/0"), act("undefined_name")], act("final_answer(0)")], k=3)
    step = result.steps[0]
    assert step.candidates[0].chosen and step.result is None and "has no code" in step.observation
    assert all(c.outcome_key is None for c in step.candidates)
    result, _ = run([[act("1/0"), act("undefined_name"), "no code"], act("final_answer(0)")], k=3)
    assert "ZeroDivisionError" in result.steps[0].observation


def test_a_hanging_candidate_times_out_and_the_others_still_count():
    result, _ = run(
        [[act("import time\ntime.sleep(60)"), act("final_answer(5)"), act("final_answer(5)")]], k=3, exec_timeout=2
    )
    step = result.steps[0]
    assert result.answer == 5
    assert step.candidates[0].result.error.type == "TimeoutError" and step.candidates[0].outcome_key is None
    assert result.trajectory.seconds < 30


def test_file_side_effects_of_losers_are_invisible():
    write = "open('a.txt', 'w').write('A')\nprint('A')"
    result, _ = run(
        [[act(write), act("print('B')"), act("print('B')")],
         act("import os\nfinal_answer(os.path.exists('a.txt'))")], k=3,
    )
    assert result.steps[0].candidates[1].chosen
    assert result.answer is False


def test_winner_file_effects_persist():
    write = "open('w.txt', 'w').write('W')\nprint('W')"
    result, _ = run([[act(write), act(write), act("print('other')")], act("final_answer(open('w.txt').read())")], k=3)
    assert result.answer == "W"


def test_every_candidate_is_recorded():
    result, engine = run([[act("final_answer(1)"), "junk", act("final_answer(1)"), act("1/0")]], k=4)
    cands = result.steps[0].candidates
    assert [c.index for c in cands] == [0, 1, 2, 3]
    assert [c.outcome_key is not None for c in cands] == [True, False, True, False]
    assert cands[3].result.error.type == "ZeroDivisionError"
    assert all(c.text for c in cands) and engine.calls[0]["n"] == 4


def test_k1_path_is_greedy_and_unvoted():
    engine = ReplayEngine([act("final_answer(3)")])
    result = Agent(engine).run("task")
    assert result.answer == 3 and result.steps[0].candidates == []
    assert engine.calls[0]["n"] == 1 and engine.calls[0]["sampling"].temperature == 0


@pytest.mark.parametrize(
    "a,b,same",
    [
        (ExecResult(called_final_answer=True, final_answer=" Paris "), ExecResult(called_final_answer=True, final_answer="paris"), True),
        (ExecResult(called_final_answer=True, final_answer=2.0), ExecResult(called_final_answer=True, final_answer=2), True),
        (ExecResult(stdout="1\n", value="None"), ExecResult(stdout="1", value="None"), True),
        (ExecResult(stdout="1\n", value="3"), ExecResult(stdout="1\n", value="4"), False),
        (ExecResult(called_final_answer=True, final_answer=""), ExecResult(stdout=""), False),
        # beyond float precision and range: exact, and no OverflowError
        (ExecResult(called_final_answer=True, final_answer=7**500), ExecResult(called_final_answer=True, final_answer=str(7**500)), True),
        (ExecResult(called_final_answer=True, final_answer=2**70), ExecResult(called_final_answer=True, final_answer=2**70 + 1), False),
        (ExecResult(called_final_answer=True, final_answer="1,000"), ExecResult(called_final_answer=True, final_answer=1000.0), True),
        (ExecResult(called_final_answer=True, final_answer=float("inf")), ExecResult(called_final_answer=True, final_answer="inf"), True),
    ],
)
def test_outcome_keys(a, b, same):
    assert (outcome_key(a) == outcome_key(b)) is same
