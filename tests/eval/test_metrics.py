"""Metrics on real answers from the sets: QA normalization/EM/F1, math extraction and equivalence."""

from __future__ import annotations

import math
import re

import pytest

from tinyact.eval import math_equiv
from tinyact.eval.math_equiv import extract_math_answer, last_boxed, math_equal, normalize_math
from tinyact.eval.metrics import (
    check_math,
    check_qa,
    exact_match,
    extract_qa_answer,
    normalize_answer,
    token_f1,
)


def _by_id(bench, qid):
    return next(q for q in bench.questions if q.id == qid)


# --- factual QA ----------------------------------------------------------------


def test_articles_and_punctuation_on_real_answers(load):
    hp = load("hotpotqa")
    assert _by_id(hp, "5a8d5fc6554299585d9e37c6").answer == "The Spiderwick Chronicles"
    assert exact_match("Spiderwick Chronicles", "The Spiderwick Chronicles")
    assert exact_match("the spiderwick chronicles.", "The Spiderwick Chronicles")
    assert _by_id(hp, "5a85eed75542996432c5713b").answer == "Coahuila, Mexico"
    assert exact_match("Coahuila Mexico", "Coahuila, Mexico")
    assert not exact_match("Mexico", "Coahuila, Mexico")
    assert token_f1("Mexico", "Coahuila, Mexico") == pytest.approx(2 / 3)
    assert exact_match("KKR & Co.", _by_id(hp, "5ac120c55542992a796dedfc").answer)
    assert exact_match("B17 Flying Fortress bomber", _by_id(hp, "5a8c4c625542995e66a475a1").answer)
    # MuSiQue's money answers: "$72,641"
    mq = load("musique")
    assert exact_match("72,641", _by_id(mq, "3hop1__53690_161697_73916").answer)
    # 2Wiki: accents ("Cahiers du cinéma"), "A Sound Of Trumpets"
    assert _by_id(load("2wiki"), "10476").answer == "Cahiers du cin\u00e9ma"
    assert exact_match("Cahiers du Cinema", "Cahiers du cin\u00e9ma")
    assert exact_match("sound of trumpets", _by_id(load("2wiki"), "5820").answer)


def test_every_real_qa_answer_matches_itself_and_its_noisy_form(load):
    for name in ("hotpotqa", "bamboogle", "musique", "2wiki", "hotpotqa-distractor"):
        for q in load(name).questions:
            assert check_qa(q.answer, q.answer).correct, q
            shout = q.answer.upper() if q.answer.isascii() else q.answer  # "ı".upper().lower() != "ı"
            noisy = f"<answer> The {shout}! </answer>"
            assert check_qa(noisy, q.answer).correct, (name, q.answer)


def test_numbers_written_as_words(load):
    hp = load("hotpotqa")
    assert _by_id(hp, "5adffe7155429906c02daa9e").answer == "seven"
    assert exact_match("7", "seven")
    assert _by_id(hp, "5ae7ed17554299540e5a56a3").answer == "44"
    assert exact_match("forty-four", "44")
    assert exact_match("Forty four", "44")
    assert exact_match("5", _by_id(load("musique"), "3hop1__469478_15840_36014").answer)  # "five"
    assert exact_match("one hundred and five", "105")
    assert normalize_answer("twenty-one pilots") == "21 pilots"
    assert not exact_match("6", "seven")


def test_yes_no_only_score_exactly(load):
    yes_no = [q for q in load("hotpotqa-distractor").questions if q.answer.lower() in ("yes", "no")]
    assert yes_no
    for q in yes_no:
        other = "no" if q.answer.lower() == "yes" else "yes"
        assert check_qa(q.answer, q.answer).details["f1"] == 1.0
        assert token_f1(f"{other}, it is not", q.answer) == 0.0
        assert token_f1(f"{q.answer} it is", q.answer) == 0.0  # HotpotQA's official rule


def test_f1_and_em_are_recorded_with_the_metric_name():
    s = check_qa("I think <answer>Denise Levertov was born in 1923</answer>", "Denise Levertov")
    assert s.metric == "em" and not s.correct and s.value == 0.0
    assert s.extracted == "Denise Levertov was born in 1923"
    assert s.details["f1"] == pytest.approx(2 * (2 / 6) * 1 / (2 / 6 + 1))
    assert check_qa(None, "x").metric == "em"


def test_gold_aliases():
    assert exact_match("NYC", ["New York City", "NYC"])
    assert token_f1("New York", ["NYC", "New York City"]) == pytest.approx(0.8)


def test_extract_qa_answer():
    assert extract_qa_answer("reasoning...\n<answer>Paris</answer>") == "Paris"
    assert extract_qa_answer("<answer>a</answer> then <answer>b</answer>") == "b"
    assert extract_qa_answer("stopped before the tag: <answer>Berlin") == "Berlin"
    assert extract_qa_answer("blah\nFinal answer: Rome") == "Rome"
    assert extract_qa_answer("so \\boxed{Oslo}") == "Oslo"
    assert extract_qa_answer("no format at all") is None


# --- math: extraction -------------------------------------------------------------


def test_last_boxed_nested_braces():
    assert last_boxed("x \\boxed{1} and \\boxed{\\frac{\\sqrt{3}}{4}}.") == "\\frac{\\sqrt{3}}{4}"
    assert last_boxed("\\boxed 5$") == "5"
    assert last_boxed("\\fbox{7}") == "7"
    assert last_boxed("unclosed \\boxed{\\frac{1}{2}") is None
    assert last_boxed("nothing") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $x = \\boxed{\\dfrac{14}{3}}$.", "\\dfrac{14}{3}"),
        ("Reasoning.\n<answer>13138980</answer>", "13138980"),
        ("<answer>The result is \\boxed{42}</answer>", "42"),
        ("final_answer(561161.7)", "561161.7"),
        ("The answer is 17.", "17"),
        ("Answer: $\\frac{3}{56}$", "\\frac{3}{56}"),
        ("they eat 30 apples a day, so in total 1,309 apples", "1,309"),
        ("Therefore the total is -7020321.0 dollars and more words here", "-7020321.0"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("\\text{Evelyn}", "\\text{Evelyn}"),
        (4.46752e-05, "4.46752e-05"),
        ("I cannot solve this problem at all, sorry about it", "I cannot solve this problem at all, sorry about it"),
        ("", None),
        (None, None),
    ],
)
def test_extract_math_answer(text, expected):
    assert extract_math_answer(text) == expected


# --- math: equivalence on real answers ---------------------------------------------


def test_every_math500_gold_equals_itself_boxed(load):
    for q in load("math500").questions:
        s = check_math(f"Thus the answer is $\\boxed{{{q.answer}}}$.", q.answer)
        assert s.correct, q.answer
        assert s.metric in ("string", "numeric", "math_verify", "sympy")


def test_latex_fractions_from_math500(load):
    fracs = [q.answer for q in load("math500").questions if re.fullmatch(r"-?\\frac\{\d+\}\{\d+\}", q.answer)]
    assert len(fracs) >= 20
    for gold in fracs:
        m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", gold)
        sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        assert math_equal(f"{sign}{a}/{b}", gold)[0], gold
        assert math_equal(gold.replace("\\frac", "\\dfrac"), gold)[0], gold
        decimal = (-1 if sign else 1) * a / b
        assert math_equal(repr(decimal), gold)[0], gold
        assert not math_equal(f"{sign}{a + 1}/{b}", gold)[0], gold
    assert math_equal("\\frac12", "\\frac{1}{2}") == (True, "string")
    assert math_equal("0.5", "\\frac{1}{2}") == (True, "numeric")


def test_intervals_from_math500(load):
    golds = {q.answer for q in load("math500").questions}
    assert "(3,4]" in golds and "(-\\infty, 0]" in golds and "(2,\\infty)" in golds
    assert math_equal("(3, 4]", "(3,4]")[0]
    assert not math_equal("[3,4]", "(3,4]")[0]
    assert not math_equal("(3,4)", "(3,4]")[0]
    assert math_equal("(-\\infty,0]", "(-\\infty, 0]")[0]
    assert math_equal("\\left(2, \\infty\\right)", "(2,\\infty)")[0]
    assert not math_equal("[2,\\infty)", "(2,\\infty)")[0]
    gold = "\\left(\\frac{3}{5},\\frac{8}{3}\\right]"
    assert gold in golds
    assert math_equal("(0.6, 8/3]", gold)[0]
    assert math_equal("(-\\infty,-8]\\cup [8,\\infty)", "(-\\infty, -8] \\cup [8, \\infty)")[0]


def test_roots_pi_text_units_percent(load):
    golds = {q.answer for q in load("math500").questions}
    for gold, pred in [
        ("3\\sqrt{13}", "\\sqrt{117}"),
        ("11\\sqrt2", "11\\sqrt{2}"),
        ("\\frac{3\\sqrt{3}}{4}", "\\frac{3}{4}\\sqrt{3}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
        ("\\text{Evelyn}", "Evelyn"),
        ("5.4 \\text{ cents}", "5.4"),
        ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),
        ("\\text{(C)}", "(C)"),
    ]:
        assert gold in golds, gold
        assert math_equal(pred, gold)[0], (pred, gold)
    assert math_equal("10\\%", "10")[0]
    assert math_equal("x = 5", "5")[0]
    assert not math_equal("\\sqrt{118}", "3\\sqrt{13}")[0]
    assert not math_equal("\\text{Evelyn}", "Evelyn Smith")[0]


def test_sympy_fallback_without_math_verify(monkeypatch):
    monkeypatch.setattr(math_equiv, "_math_verify_equal", lambda p, g: False)
    assert math_equal("\\sqrt{117}", "3\\sqrt{13}") == (True, "sympy")
    assert math_equal("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}") == (True, "sympy")
    assert math_equal("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)") == (True, "sympy")
    assert math_equal("(0.6, 8/3]", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]")[0]
    assert not math_equal("[0.6, 8/3]", "\\left(\\frac{3}{5},\\frac{8}{3}\\right]")[0]
    assert math_equal("2\\pi", "\\pi \\cdot 2")[0]
    assert not math_equal("\\sqrt{118}", "3\\sqrt{13}")[0]


def test_gsm_hard_floats_with_tolerance(load):
    gsm = load("gsm-hard")
    floats = [q.answer for q in gsm.questions if q.answer != int(q.answer)]
    assert len(floats) == 109 and 4.46752e-05 in floats and 561161.7000000001 in floats
    for gold in floats:
        assert check_math(f"\\boxed{{{gold:.10g}}}", gold, numeric=True).correct, gold
        rounded = round(gold, 2)  # credit only within the paper's tolerance, not for rounding as such
        assert check_math(f"\\boxed{{{rounded}}}", gold, numeric=True).correct == math.isclose(rounded, gold, rel_tol=1e-4)
        assert not check_math(f"\\boxed{{{gold * 1.01}}}", gold, numeric=True).correct, gold
    assert not check_math("\\boxed{0.0000447}", 4.46752e-05, numeric=True).correct  # relative error 5e-4
    assert check_math("\\boxed{0.000044675}", 4.46752e-05, numeric=True).metric == "numeric"
    assert not check_math("\\boxed{0.00}", 4.46752e-05, numeric=True).correct
    assert check_math("\\boxed{5031.98}", 5031.9785714286, numeric=True).correct
    ints = [q.answer for q in gsm.questions if q.answer == int(q.answer)]
    for gold in ints[:100]:
        assert check_math(f"so the answer is {int(gold):,}", gold, numeric=True).correct, gold
        assert not check_math(f"\\boxed{{{int(gold) + 1}}}", gold, numeric=True).correct, gold


def test_numeric_tolerance_is_qwen_math_equal_rel_1e4(monkeypatch):
    """The paper graded with Qwen2.5-Math's math_equal: isclose(rel_tol=1e-4), no credit for rounding."""
    assert math_equiv.REL_TOL == 1e-4
    assert not check_math("\\boxed{0.333}", "\\frac{1}{3}").correct  # relative error 1e-3
    assert not math_equal("0.33", "\\frac{1}{3}")[0]
    assert math_equal("0.3333", "\\frac{1}{3}") == (True, "numeric")  # relative error 1e-4
    assert math_equal("0.33333", "1/3") == (True, "numeric")
    assert not math_equal("3.14", "3.14159")[0] and math_equal("3.1416", "3.14159")[0]
    assert math_equal("100", "100.0") == (True, "numeric") and not math_equal("100001", "100000")[0]
    monkeypatch.setattr(math_equiv, "_math_verify_equal", lambda p, g: False)  # the sympy path too
    assert math_equal("0.70711", "\\frac{\\sqrt{2}}{2}") == (True, "sympy")
    assert not math_equal("0.707", "\\frac{\\sqrt{2}}{2}")[0]
    assert not math_equal("3.14", "\\pi")[0] and math_equal("3.14159", "\\pi")[0]


def test_aime_and_olymmath_integer_answers(load):
    for name in ("aime", "olymmath"):
        for q in load(name).questions:
            assert check_math(f"\\boxed{{{q.answer}}}", q.answer).correct, (name, q.answer)
    first = load("aime").questions[0]
    assert first.answer == "116"
    assert check_math("P(0)+Q(0) = 116", "116").correct
    assert not check_math("\\boxed{115}", "116").correct


def test_math_scores_name_their_method():
    assert check_math("\\boxed{\\frac{1}{2}}", "0.5").metric == "numeric"
    assert check_math("\\boxed{x}", "\\frac{1}{2}").metric == "math_equiv"
    s = check_math("no answer here", "3")
    assert not s.correct and s.metric == "math_equiv"
    assert normalize_math("\\$1,000\\text{ dollars}") == "1000"


def test_no_false_positives_between_different_real_answers(load):
    golds = [q.answer for q in load("math500").questions][:200]
    for i, gold in enumerate(golds):
        other = golds[i - 1]
        if math_equal(other, gold)[0]:  # only true duplicates ("7" and "7", "x=5" and "5")
            assert normalize_math(other) == normalize_math(gold), (other, gold)
    gsm = [q.answer for q in load("gsm-hard").questions]
    assert not any(check_math(repr(gsm[i - 1]), g, numeric=True).correct for i, g in enumerate(gsm) if gsm[i - 1] != g)
