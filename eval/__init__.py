"""Evaluation: the paper's benchmarks, answer metrics, CoT and agent runners, reports."""

from __future__ import annotations

from tinyact.eval.cot import CoTSolver, majority_answer
from tinyact.eval.datasets import (
    BENCHMARKS,
    Benchmark,
    Question,
    iter_hotpotqa_corpus,
    list_benchmarks,
    load_benchmark,
    shared_data_dir,
)
from tinyact.eval.judge import LLMJudge
from tinyact.eval.math_equiv import extract_math_answer, math_equal, normalize_math
from tinyact.eval.metrics import (
    Score,
    check_math,
    check_qa,
    exact_match,
    extract_qa_answer,
    normalize_answer,
    token_f1,
)
from tinyact.eval.prompts import COT_PROMPT_VERSION, cot_messages
from tinyact.eval.report import make_report
from tinyact.eval.runner import (
    Prediction,
    Result,
    RunSummary,
    SolveBatch,
    load_results,
    prediction_from_trajectory,
    run_eval,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "COT_PROMPT_VERSION",
    "CoTSolver",
    "LLMJudge",
    "Prediction",
    "Question",
    "Result",
    "RunSummary",
    "Score",
    "SolveBatch",
    "check_math",
    "check_qa",
    "cot_messages",
    "exact_match",
    "extract_math_answer",
    "extract_qa_answer",
    "iter_hotpotqa_corpus",
    "list_benchmarks",
    "load_benchmark",
    "load_results",
    "majority_answer",
    "make_report",
    "math_equal",
    "normalize_answer",
    "normalize_math",
    "prediction_from_trajectory",
    "run_eval",
    "shared_data_dir",
    "token_f1",
]
