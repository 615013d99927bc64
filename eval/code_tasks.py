"""A seeded set of small tasks that need code (exact answers known).

Used by bench/agent.py, bench/consistency.py and distillation as a task mix a
small model can solve only by computing: big multiplications, character
counts, list arithmetic, modular powers, prime counts, string reversal.

``make_bignum_tasks``: exact integers of 17 to 40 digits (powers, products of two
9-12 digit numbers, 2**k - 1), the kind of answer a model gets wrong when it
retypes an observed value instead of answering with the variable that holds it
(issue 19's prompt fault: it printed 7**23 right, then answered a made-up number).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["BIGNUM_KINDS", "CodeTask", "check_code_answer", "make_bignum_tasks", "make_code_tasks"]

_WORDS = ("banana", "strawberry", "mississippi", "character", "excellence", "parallel", "committee",
          "bookkeeper", "assessment", "possession", "engineering", "programming", "occurrence")


@dataclass(frozen=True)
class CodeTask:
    id: str
    kind: str
    question: str
    answer: Any


def _primes_below(n: int) -> int:
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i:: i] = bytearray(len(sieve[i * i:: i]))
    return sum(sieve)


def _one(rng: random.Random, kind: str, i: int) -> CodeTask:
    if kind == "multiply":
        a, b = rng.randint(1000, 99999), rng.randint(1000, 99999)
        return CodeTask(f"multiply-{i}", kind, f"What is {a} * {b}?", a * b)
    if kind == "count":
        words = " ".join(rng.sample(_WORDS, 3))
        letter = rng.choice(sorted(set(words.replace(" ", ""))))
        return CodeTask(f"count-{i}", kind, f"How many times does the letter '{letter}' appear in '{words}'?",
                        words.count(letter))
    if kind == "sum_squares":
        lo, hi = rng.randint(1, 30), rng.randint(40, 120)
        return CodeTask(f"sum_squares-{i}", kind,
                        f"What is the sum of the squares of the integers from {lo} to {hi} inclusive?",
                        sum(x * x for x in range(lo, hi + 1)))
    if kind == "list_max_diff":
        xs = [rng.randint(-500, 500) for _ in range(8)]
        return CodeTask(f"list_max_diff-{i}", kind,
                        f"Given the list {xs}, what is the largest value minus the smallest value?", max(xs) - min(xs))
    if kind == "powmod":
        a, b, m = rng.randint(2, 99), rng.randint(20, 200), rng.randint(7, 997)
        return CodeTask(f"powmod-{i}", kind, f"What is the remainder when {a}^{b} is divided by {m}?", pow(a, b, m))
    if kind == "primes":
        n = rng.randint(100, 5000)
        return CodeTask(f"primes-{i}", kind, f"How many prime numbers are less than {n}?", _primes_below(n))
    if kind == "reverse":
        word = rng.choice(_WORDS) + rng.choice(_WORDS)
        return CodeTask(f"reverse-{i}", kind, f"What is the string '{word}' written backwards?", word[::-1])
    raise ValueError(kind)


KINDS = ("multiply", "count", "sum_squares", "list_max_diff", "powmod", "primes", "reverse")


def make_code_tasks(n: int = 35, seed: int = 0) -> list[CodeTask]:
    """``n`` tasks cycling through the kinds, reproducible for a seed."""
    rng = random.Random(seed)
    return [_one(rng, KINDS[i % len(KINDS)], i) for i in range(n)]


BIGNUM_KINDS = ("power", "big_multiply", "mersenne")


def _bignum(rng: random.Random, kind: str, i: int) -> CodeTask:
    if kind == "power":
        a, b = 7, 23  # the example
        while i and (a == 10 or a ** b < 10 ** 16 or (a, b) == (7, 23)):  # 17+ digits, not trivial
            a, b = rng.randint(3, 19), rng.randint(20, 40)
        question, answer = f"What is {a}**{b}?", a ** b
    elif kind == "big_multiply":
        a, b = (rng.randint(10 ** (d - 1), 10 ** d - 1) for d in (rng.randint(9, 12), rng.randint(9, 12)))
        question, answer = f"What is {a} * {b}?", a * b
    elif kind == "mersenne":
        k = rng.randint(60, 130)
        question, answer = f"What is 2**{k} - 1?", 2 ** k - 1
    else:
        raise ValueError(kind)
    return CodeTask(f"{kind}-{i}", kind, f"{question} Compute it exactly.", answer)


def make_bignum_tasks(n: int = 18, seed: int = 0) -> list[CodeTask]:
    """``n`` exact big-number tasks cycling through ``BIGNUM_KINDS`` (the first is 7**23)."""
    rng = random.Random(seed)
    tasks: list[CodeTask] = []
    while len(tasks) < n:
        task = _bignum(rng, BIGNUM_KINDS[len(tasks) % len(BIGNUM_KINDS)], len(tasks))
        if all(t.question != task.question for t in tasks):  # small ranges can draw a question twice
            tasks.append(task)
    return tasks


def check_code_answer(prediction: Any, gold: Any) -> bool:
    """Exact match, tolerant of type and surrounding quotes/whitespace ("42" == 42)."""
    if prediction is None:
        return False
    if isinstance(gold, int) and not isinstance(gold, bool):
        text = str(prediction).strip().strip("'\"").replace(",", "")
        try:
            return int(text) == gold  # exact, however large (a float would overflow or round)
        except ValueError:
            pass
        try:
            return float(text) == gold  # "42.0", "4.2e1"
        except (ValueError, OverflowError):
            return False
    return str(prediction).strip().strip("'\"") == str(gold)
