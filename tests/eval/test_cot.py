"""The CoT baseline driven end to end through ReplayEngine, on real questions."""

from __future__ import annotations

import json

from tinyact.eval.cot import CoTSolver, majority_answer
from tinyact.eval.prompts import COT_PROMPT_VERSION, cot_messages
from tinyact.eval.runner import run_eval
from tinyact.models.engines import ReplayEngine


def test_cot_math_end_to_end(load, tmp_path):
    bench = load("gsm-hard", limit=4)
    golds = [q.answer for q in bench.questions]
    script = [
        f"Each eats ... so the total is $\\boxed{{{golds[0]:.0f}}}$.",
        f"Compute step by step. The answer is {golds[1] + 1:.0f}.",  # wrong, no box
        f"\\boxed{{{golds[2]}}}",
        "I am not sure.",
    ]
    engine = ReplayEngine(script)
    solver = CoTSolver(engine, "math", model="replay-model")
    summary = run_eval(bench, solver, tmp_path / "run", batch_size=4, config=solver.config, progress=False)
    engine.assert_consumed()
    assert len(engine.calls) == 1 and len(engine.calls[0]["conversations"]) == 4  # batched
    assert engine.calls[0]["sampling"].temperature == 0.0 and engine.calls[0]["stop"] == []
    assert summary.n == 4 and summary.accuracy == 0.5
    assert summary.format_error_rate == 0.5 and summary.model == "replay-model"
    assert summary.prompt_version == COT_PROMPT_VERSION
    assert summary.mean_tokens > 0
    lines = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert [x["score"]["correct"] for x in lines] == [True, False, True, False]
    assert lines[0]["prediction"]["raw"].startswith("Each eats")


def test_cot_qa_stops_at_the_closing_tag_and_votes(load, tmp_path):
    bench = load("hotpotqa-distractor", "test", limit=2)
    a0, a1 = bench.questions[0].answer, bench.questions[1].answer
    script = [
        [f"Reasoning.\n<answer>{a0}</answer> trailing text", "<answer>Somebody Else</answer>",
         f"<answer>the {a0}</answer>"],
        ["<answer>wrong one</answer>", "no tag at all", f"<answer>{a1}</answer>"],
    ]
    engine = ReplayEngine(script)
    solver = CoTSolver(engine, "qa", samples=3)
    summary = run_eval(bench, solver, tmp_path / "run", config=solver.config, progress=False)
    call = engine.calls[0]
    assert call["n"] == 3 and call["stop"] == ["</answer>"] and call["sampling"].temperature > 0
    assert summary.samples == 3 and summary.metric == "em"
    lines = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert lines[0]["prediction"]["text"] == a0 and lines[0]["score"]["correct"]  # 2 of 3 agree
    assert len(lines[0]["prediction"]["candidates"]) == 3
    assert lines[1]["prediction"]["text"] == "wrong one"  # a three-way tie: the first wins
    assert summary.accuracy == 0.5 and summary.mean_f1 is not None


def test_majority_answer():
    assert majority_answer(["\\frac12", "0.5", "\\frac{1}{2}"], "math") == ("\\frac12", 0)
    assert majority_answer([None, "Paris", "paris.", "Rome"], "qa") == ("Paris", 1)
    assert majority_answer([None, None], "qa") == (None, 0)


def test_prompts_are_versioned_and_ask_for_the_format():
    qa = cot_messages("Who?", "qa")
    assert qa[0].role == "system" and "<answer>" in qa[0].content and qa[1].content.startswith("Question: Who?")
    math = cot_messages("1+1?", "math")
    assert "\\boxed{}" in math[0].content and "\\boxed{}" in math[1].content
    assert COT_PROMPT_VERSION.startswith("cot-v")
