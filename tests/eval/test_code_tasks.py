"""The seeded code tasks: reproducible, and graded exactly whatever the answer's size or type."""

from __future__ import annotations

import pytest

from tinyact.eval.code_tasks import BIGNUM_KINDS, KINDS, check_code_answer, make_bignum_tasks, make_code_tasks


def test_tasks_are_reproducible_and_cycle_through_kinds() -> None:
    a, b = make_code_tasks(14, seed=3), make_code_tasks(14, seed=3)
    assert [(t.question, t.answer) for t in a] == [(t.question, t.answer) for t in b]
    assert [t.kind for t in a[: len(KINDS)]] == list(KINDS)
    assert [t.question for t in make_code_tasks(14, seed=4)] != [t.question for t in a]
    assert [t.id for t in make_code_tasks(7, seed=3)] == [t.id for t in a[:7]]  # a prefix of a longer set


@pytest.mark.parametrize(
    ("prediction", "gold", "ok"),
    [
        (42, 42, True),
        ("42", 42, True),
        (" '42' ", 42, True),
        ("42.0", 42, True),
        ("4.2e1", 42, True),
        ("1,234", 1234, True),
        (43, 42, False),
        ("forty-two", 42, False),
        (None, 42, False),
        (True, 1, False),  # "True" is not the number 1
        ("olleh", "olleh", True),
        ("'olleh'", "olleh", True),
        ("hello", "olleh", False),
    ],
)
def test_check_code_answer(prediction: object, gold: object, ok: bool) -> None:
    assert check_code_answer(prediction, gold) is ok


def test_huge_integers_compare_exactly_without_overflow() -> None:
    big = 7**500  # 423 digits: float() of it raises OverflowError
    assert check_code_answer(str(big), big)
    assert check_code_answer(big, big)
    assert not check_code_answer(str(big + 1), big)  # a float would round these together
    assert not check_code_answer("1e400", big)
    assert not check_code_answer(str(big), 42)


def test_bignum_tasks_are_exact_big_integers_starting_with_the_issue_example() -> None:
    tasks = make_bignum_tasks(18)
    assert tasks[0].question == "What is 7**23? Compute it exactly." and tasks[0].answer == 7 ** 23
    assert [t.kind for t in tasks[:3]] == list(BIGNUM_KINDS)
    assert len({t.question for t in tasks}) == 18  # no question drawn twice
    assert all(isinstance(t.answer, int) and len(str(t.answer)) >= 17 for t in tasks)  # past float precision
    assert [t.question for t in make_bignum_tasks(6)] == [t.question for t in tasks[:6]]
    assert eval(tasks[1].question.split("What is ")[1].split("?")[0]) == tasks[1].answer  # noqa: S307
    assert not check_code_answer(float(tasks[0].answer), tasks[0].answer)  # a float rounds: wrong
