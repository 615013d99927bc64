"""Math answers: extraction from responses and equivalence (string, numeric, math-verify, sympy)."""

from __future__ import annotations

import math
import re
import threading
from typing import Any

__all__ = ["REL_TOL", "extract_math_answer", "last_boxed", "math_equal", "normalize_math"]

_NUM = r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(rf"(?<![\w.]){_NUM}(?:\s*/\s*\d+)?")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces
    allowed; ``\\boxed 5`` also works. None when there is none or it is unclosed."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    i = idx + (6 if text.startswith("\\boxed", idx) else 5)
    if i < len(text) and text[i] == " ":  # "\boxed 5"
        m = re.match(r" +([^\s$]+)", text[i:])
        return m.group(1) if m else None
    while i < len(text) and text[i] != "{":
        i += 1
    depth, start = 0, i + 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[start:j]
    return None


def _looks_bare(text: str) -> bool:
    """True for a short one-line answer ("\\frac{1}{2}", "5.4 \\text{ cents}", "Evelyn"),
    not a sentence (where the last number is the better guess)."""
    if "\n" in text or len(text) > 80:
        return False
    words = re.findall(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}", re.sub(r"\\[a-zA-Z]+", " ", text))
    return len(words) <= 1 or not re.search(r"\d", text)


def extract_math_answer(text: Any) -> str | None:
    """Take the final answer out of a math response.

    In order: the last ``\\boxed{}``; the last ``<answer>...</answer>``; the
    argument of a ``final_answer(...)`` call; "the answer is X" / "Answer: X";
    the text itself when it is already a short bare answer; the last number.

    Args:
        text: A response, an already-extracted answer, or a number (a
            ``final_answer`` value).

    Returns:
        The answer text, or None when nothing answer-like was found.

    Example:
        >>> extract_math_answer("so $x = \\\\boxed{\\\\frac{1}{2}}$.")
        '\\\\frac{1}{2}'
    """
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return repr(text)
    text = str(text).strip()
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    tags = re.findall(r"<answer>(.*?)(?:</answer>|$)", text, re.DOTALL | re.IGNORECASE)
    tags = [t.strip() for t in tags if t.strip()]
    if tags:
        return extract_math_answer(tags[-1]) or tags[-1]
    calls = re.findall(r"final_answer\((.+?)\)\s*$", text, re.MULTILINE)
    if calls:
        return calls[-1].strip().strip("\"'")
    said = re.findall(r"(?i)(?:final answer|answer)\s*(?:is|:)\s*:?\s*(.+)", text)
    if said:
        answer = said[-1].strip().rstrip(".").strip("$ ").strip()
        if answer:
            return answer
    if _looks_bare(text):
        return text
    nums = _NUM_RE.findall(text)
    if nums:
        return nums[-1].replace(" ", "")
    return None


# --- normalization -----------------------------------------------------------

_WRAPPERS = ("\\text", "\\textbf", "\\mathrm", "\\mbox", "\\mathbf", "\\textrm", "\\operatorname")


def _unwrap(s: str, command: str) -> str:
    """Replace ``\\command{x}`` by ``x`` (nested braces allowed)."""
    out, i = [], 0
    while True:
        j = s.find(command + "{", i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j])
        k, depth = j + len(command), 0
        for m in range(k, len(s)):
            depth += {"{": 1, "}": -1}.get(s[m], 0)
            if depth == 0:
                out.append(s[k + 1 : m])
                i = m + 1
                break
        else:
            out.append(s[j:])
            return "".join(out)


def normalize_math(answer: Any) -> str:
    """Canonical string form of a math answer: no ``$``, ``\\left``/``\\right``,
    ``\\text{}`` wrappers, units after a number, degrees, ``%``, thousands
    separators, spacing, anything up to the last ``=``; ``\\dfrac``/``\\tfrac``
    -> ``\\frac``; ``\\frac12`` -> ``\\frac{1}{2}``.
    """
    s = str(answer).strip()
    s = s.replace("\\$", "").replace("$", "").replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\\[!,;: ]", " ", s).replace("~", " ")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\s*\{?\\circ\}?|\\degree|°", "", s)
    for w in _WRAPPERS:
        s = _unwrap(s, w)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d+)", r"\\sqrt{\1}", s)
    if "=" in s:  # "x = 5", "P(0)+Q(0) = 116": the right-hand side is the answer
        s = s.rsplit("=", 1)[1]
    s = s.strip().rstrip(".").strip()
    # a number followed by unit words: "5.4 cents", "30 degrees", "10 inches^2"
    m = re.fullmatch(rf"({_NUM}|\\frac\{{[^{{}}]*\}}\{{[^{{}}]*\}})\s*[a-zA-Z][a-zA-Z ]*(\^\d)?", s)
    if m:
        s = m.group(1)
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    return re.sub(r"\s+", "", s)


def _to_float(s: str) -> float | None:
    """A plain number, ``a/b`` or ``\\frac{a}{b}`` with numeric a, b, as a float."""
    try:
        return float(s)
    except ValueError:
        pass
    m = re.fullmatch(r"(-?)(?:\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(-?[\d.]+)/(-?[\d.]+))", s)
    if not m:
        return None
    num, den = (m.group(2), m.group(3)) if m.group(2) is not None else (m.group(4), m.group(5))
    try:
        value = float(num) / float(den)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if m.group(1) else value


REL_TOL = 1e-4
"""Relative tolerance of numeric comparison: the Qwen2.5-Math ``math_equal`` grader's
(``isclose(reference, prediction, rel_tol=1e-4)``), which the paper evaluated with.
So ``0.3333`` equals ``\\frac{1}{3}`` but ``0.333`` (relative error 1e-3) does not."""


def _numeric_equal(pred: float, gold: float, rel_tol: float) -> bool:
    if pred.is_integer() and gold.is_integer():
        return pred == gold  # integers are exact, however large (stricter than Qwen's grader)
    return math.isclose(pred, gold, rel_tol=rel_tol, abs_tol=1e-12)


def math_equal(
    prediction: Any, gold: Any, *, numeric: bool = False, rel_tol: float | None = None
) -> tuple[bool, str]:
    """Whether two math answers are equivalent, and the method that decided it.

    Tries, in order: normalized string equality (``string``); numbers
    (``numeric``: two integers exactly, otherwise within a relative tolerance
    of 1e-4, the Qwen2.5-Math grader's, see ``REL_TOL``; a rounded prediction
    gets no extra credit); ``math-verify`` when installed (``math_verify``); a
    sympy fallback handling fractions, roots, pi, tuples and intervals, whose
    numeric values also compare within ``REL_TOL`` (``sympy``).

    Args:
        prediction: The extracted predicted answer.
        gold: The gold answer (LaTeX string or number).
        numeric: Kept for callers that grade numbers (GSM-Hard); the tolerance
            is the same 1e-4 either way, as in the paper's grader.
        rel_tol: Overrides the relative tolerance.

    Returns:
        ``(equal, method)``; method is ``"none"`` when nothing matched.
    """
    if prediction is None:
        return False, "none"
    tol = rel_tol if rel_tol is not None else REL_TOL
    p, g = normalize_math(prediction), normalize_math(gold)
    if not p:
        return False, "none"
    if p == g:
        return True, "string"
    pf, gf = _to_float(p), _to_float(g)
    if pf is not None and gf is not None:
        return _numeric_equal(pf, gf, tol), "numeric"
    if _math_verify_equal(p, g):
        return True, "math_verify"
    if _sympy_equal(p, g, tol):
        return True, "sympy"
    return False, "none"


def _math_verify_equal(pred: str, gold: str) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    # math-verify's timeouts use signal.alarm, which only works in the main thread
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        g = parse(f"${gold}$", parsing_timeout=timeout)
        t = parse(f"${pred}$", parsing_timeout=timeout)
        return bool(g and t and verify(g, t, timeout_seconds=timeout))
    except Exception:  # math-verify failing on odd input means "not shown equal"
        return False


# --- sympy fallback ----------------------------------------------------------



def _split_top(s: str, sep: str = ",") -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _structure(s: str) -> tuple[str, str, list[str]] | None:
    """``(a,b]`` -> ("(", "]", ["a", "b"]); None for a scalar."""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        inner = s[1:-1]
        depth = 0
        for ch in inner:  # the outer brackets must enclose everything
            depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
            if depth < 0:
                return None
        parts = _split_top(inner)
        if len(parts) >= 2:
            return s[0], s[-1], parts
    return None


def _latex_to_expr(s: str) -> str:
    s = s.replace("\\infty", "oo").replace("\\pi", "pi").replace("\\cdot", "*").replace("\\times", "*")
    for _ in range(10):  # nested \frac / \sqrt, innermost braces first
        new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        new = re.sub(r"\\sqrt\[([^{}\[\]]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", new)
        new = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", new)
        if new == s:
            break
        s = new
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    s = re.sub(r"\\(ln|log|sin|cos|tan|exp)", r"\1", s)
    return s.replace("\\", "")


def _sympify(s: str) -> Any:
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transformations = (*standard_transformations, implicit_multiplication_application, convert_xor)
    return parse_expr(_latex_to_expr(s), transformations=transformations, evaluate=True)


def _scalar_equal(a: str, b: str, rel_tol: float = REL_TOL) -> bool:
    if len(a) > 200 or len(b) > 200:  # simplify() can take very long on big input
        return False
    try:
        import sympy

        x, y = _sympify(a), _sympify(b)
        if x == y:
            return True
        diff = sympy.simplify(x - y)
        if diff == 0:
            return True
        if diff.is_number:  # Qwen2.5-Math: numeric_equal(float(N(a)), float(N(b)))
            return abs(complex(diff.evalf())) <= rel_tol * max(abs(complex(x.evalf())), abs(complex(y.evalf())))
    except Exception:  # unparsable LaTeX is "not shown equal", not an error
        return False
    return False


def _sympy_equal(pred: str, gold: str, rel_tol: float = REL_TOL) -> bool:
    if "\\cup" in pred or "\\cup" in gold:
        ps, gs = pred.split("\\cup"), gold.split("\\cup")
        return len(ps) == len(gs) and all(_sympy_equal(a, b, rel_tol) for a, b in zip(ps, gs, strict=True))
    sp, sg = _structure(pred), _structure(gold)
    if sp is not None or sg is not None:
        if sp is None or sg is None or len(sp[2]) != len(sg[2]):
            return False
        is_interval = len(sg[2]) == 2 and (sg[0] != "(" or sg[1] != ")" or "oo" in _latex_to_expr(gold))
        if is_interval and (sp[0], sp[1]) != (sg[0], sg[1]):
            return False  # (1, 2] is not [1, 2]
        return all(_scalar_equal(a, b, rel_tol) for a, b in zip(sp[2], sg[2], strict=True))
    return _scalar_equal(pred, gold, rel_tol)
