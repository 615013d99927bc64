"""Answer checking: factual QA (normalized exact match, token F1) and math (extraction + equivalence)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Score",
    "check_math",
    "check_qa",
    "exact_match",
    "extract_qa_answer",
    "normalize_answer",
    "token_f1",
]


class Score(BaseModel):
    """The grade of one prediction, and which metric produced it."""

    model_config = ConfigDict(extra="forbid")

    correct: bool
    value: float
    """The metric's value in [0, 1] (1.0/0.0 for binary metrics, F1 for ``f1``)."""
    metric: str
    """What decided ``correct``: ``em``, ``f1``, ``llm_judge``, or for math the
    method that matched (``string``, ``numeric``, ``math_verify``, ``sympy``) or
    ``math_equiv`` when nothing matched."""
    extracted: str | None = None
    """The answer taken from the prediction and compared (None: nothing found)."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Other metrics computed on the way, e.g. ``{"em": 0.0, "f1": 0.67}``."""


# --- factual QA --------------------------------------------------------------

_PUNCT = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014"}
_SPECIAL = ("yes", "no", "noanswer")
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_WORD_VALUE: dict[str, int] = {w: i for i, w in enumerate(_UNITS)}
_WORD_VALUE.update({w: 10 * i for i, w in enumerate(_TENS) if w != "_"})
_TENS_HYPHEN = re.compile(rf"\b({'|'.join(_TENS[2:])})[-\u2013]({'|'.join(_UNITS[1:10])})\b")


def _words_to_numbers(tokens: list[str]) -> list[str]:
    """Replace runs of number words by their digits: ["twenty", "one"] -> ["21"]."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] not in _WORD_VALUE:  # a run must start with a unit or a ten
            out.append(tokens[i])
            i += 1
            continue
        total, current = 0, 0
        while i < len(tokens):
            t = tokens[i]
            if t in _WORD_VALUE:
                current += _WORD_VALUE[t]
            elif t in _SCALES:
                if _SCALES[t] == 100:
                    current *= 100
                else:
                    total += current * _SCALES[t]
                    current = 0
            elif t == "and" and i + 1 < len(tokens) and tokens[i + 1] in _WORD_VALUE and (
                total or current >= 100
            ):
                pass  # "one hundred and five"
            else:
                break
            i += 1
        out.append(str(total + current))
    return out


def normalize_answer(text: str) -> str:
    """SQuAD-style normalization, plus number words written as digits.

    Folds accents, lowercases, drops punctuation (hyphens included: "B-17" == "B17") and the
    articles a/an/the, writes number words as digits ("twenty-one" -> "21")
    and collapses whitespace.

    Example:
        >>> normalize_answer("The  Three Musketeers!")
        '3 musketeers'
    """
    # fold accents: "Cahiers du cinéma" == "Cahiers du cinema"
    text = "".join(c for c in unicodedata.normalize("NFKD", str(text)) if not unicodedata.combining(c))
    text = _TENS_HYPHEN.sub(r"\1 \2", text.lower())  # "twenty-one" -> "twenty one"
    text = "".join(ch for ch in text if ch not in _PUNCT)  # "B-17" -> "b17", as SQuAD does
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(_words_to_numbers(text.split()))


def _golds(gold: Any) -> list[str]:
    if isinstance(gold, (list, tuple)):
        return [str(g) for g in gold]
    return [str(gold)]


def exact_match(prediction: str, gold: str | Sequence[str]) -> bool:
    """Normalized exact match against a gold answer or any of a list of aliases."""
    p = normalize_answer(prediction)
    return any(p == normalize_answer(g) for g in _golds(gold))


def _f1(prediction: str, gold: str) -> float:
    np_, ng = normalize_answer(prediction), normalize_answer(gold)
    # HotpotQA's official rule: yes/no/noanswer only score when they match exactly
    if (np_ in _SPECIAL or ng in _SPECIAL) and np_ != ng:
        return 0.0
    p, g = np_.split(), ng.split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, gold: str | Sequence[str]) -> float:
    """Token-level F1 of the normalized answers (max over gold aliases)."""
    return max(_f1(prediction, g) for g in _golds(gold))


_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)


def extract_qa_answer(text: str | None) -> str | None:
    """The answer of a QA response: the last ``<answer>...</answer>``, else a
    ``\\boxed{}``, else a line starting "Final answer:" / "Answer:"; None if none.
    """
    if text is None:
        return None
    found = [m.strip() for m in _ANSWER_TAG.findall(text) if m.strip()]
    if found:
        return found[-1]
    from tinyact.eval.math_equiv import last_boxed

    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    lines = re.findall(r"(?im)^\s*(?:final answer|answer)\s*[:：]\s*(.+)$", text)
    if lines:
        return lines[-1].strip()
    return None


def check_qa(prediction: str | None, gold: Any) -> Score:
    """Grade a factual answer: correct by normalized exact match; F1 in ``details``.

    ``prediction`` may be a whole response: the ``<answer>`` tag (or boxed /
    "Answer:" line) is taken out first; otherwise the whole text is compared.
    """
    if prediction is None:
        return Score(correct=False, value=0.0, metric="em", details={"em": 0.0, "f1": 0.0})
    answer = extract_qa_answer(prediction)
    answer = prediction.strip() if answer is None else answer
    em = exact_match(answer, gold)
    f1 = token_f1(answer, gold)
    return Score(
        correct=em,
        value=float(em),
        metric="em",
        extracted=answer,
        details={"em": float(em), "f1": f1},
    )


def check_math(prediction: str | None, gold: Any, *, numeric: bool = False) -> Score:
    """Grade a math answer: extract it, then test equivalence with the gold.

    Args:
        prediction: A final answer or a whole response (``\\boxed{}``,
            ``<answer>`` tags and plain trailing numbers are recognized).
        gold: The gold answer (LaTeX string, or a number for GSM-Hard).
        numeric: The gold is a number (GSM-Hard); numbers compare within a relative
            1e-4 either way (the Qwen2.5-Math grader's tolerance, ``math_equiv.REL_TOL``).

    Returns:
        A Score whose ``metric`` names the method that matched.
    """
    from tinyact.eval.math_equiv import extract_math_answer, math_equal

    if prediction is None:
        return Score(correct=False, value=0.0, metric="math_equiv")
    answer = extract_math_answer(prediction)
    if answer is None:
        return Score(correct=False, value=0.0, metric="math_equiv", details={"no_answer": True})
    ok, method = math_equal(answer, gold, numeric=numeric)
    return Score(correct=ok, value=float(ok), metric=method if ok else "math_equiv", extracted=answer)
