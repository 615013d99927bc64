"""End to end: the real default model, the real sandbox, tasks that need code."""

from __future__ import annotations

import pytest

from tinyact.eval.code_tasks import check_code_answer

pytestmark = pytest.mark.slow

TASKS = [
    ("What is 48271 * 90317?", 48271 * 90317),
    ("How many times does the letter 's' appear in 'mississippi possession assessment'?",
     "mississippi possession assessment".count("s")),
    ("What is the sum of the squares of the integers from 1 to 50 inclusive?", sum(i * i for i in range(1, 51))),
    ("Given the list [17, -4, 99, 23, -61, 8], what is the largest value minus the smallest value?", 99 - (-61)),
]


@pytest.fixture(scope="module")
def agent():
    from tinyact import Agent

    with Agent("qwen2.5-coder-0.5b", max_steps=4) as a:
        yield a


def test_default_model_solves_code_tasks(agent):
    results = [agent.run(question) for question, _ in TASKS]
    for r in results:
        assert r.end_reason in ("final_answer", "max_steps")
        assert r.steps and all(s.model_output and s.observation for s in r.steps)
        assert r.trajectory.usage.completion_tokens > 0
    correct = sum(check_code_answer(r.answer, gold) for r, (_, gold) in zip(results, TASKS))
    assert correct >= 3, [(r.answer, gold) for r, (_, gold) in zip(results, TASKS)]
