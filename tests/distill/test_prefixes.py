"""First-thought prefixes: extraction, and the resumable generation file."""

from __future__ import annotations

import json

import pytest

from tinyact.distill import first_thought, generate_prefixes, load_prefixes, make_prefix
from tinyact.eval.datasets import Question
from tinyact.models.engines import ReplayEngine


@pytest.mark.parametrize(
    "cot, expected",
    [
        ("First, multiply.\nThen add.\n\nSo 42.", "First, multiply.\nThen add."),
        ("  \n\nLeading blank lines.\n\nrest", "Leading blank lines."),
        ("Thought: I need the product.\n\nrest", "I need the product."),
        ("One paragraph only", "One paragraph only"),
        ("Windows line ends.\r\n\r\nrest", "Windows line ends."),
        ("Spaces on the break line.\n   \nrest", "Spaces on the break line."),
        ("", None),
        ("   \n\n  ", None),
        # a paragraph that runs on to the answer (one-paragraph QA CoT): its first line only, never the answer
        ("I'll recall both dates:\n1. A: 1969\n2. B: 1970\nSo A.\n<answer>A</answer>", "I'll recall both dates:"),
        ("The sum is 3 + 4.\nSo \\boxed{7}.\n\nDone.", "The sum is 3 + 4."),
        ("<answer>A</answer> because I know it.\nMore.", None),
        ("Plan: add.\n\n<answer>7</answer>", "Plan: add."),  # the answer after the blank line: unchanged
    ],
)
def test_first_thought(cot, expected):
    assert first_thought(cot) == expected


def test_make_prefix_format():
    assert make_prefix("I need the product.\n\n12 * 3 = 36") == "Thought: I need the product.\n\n"
    assert make_prefix("") is None


def test_generate_prefixes_records_and_resumes(tmp_path):
    qs = [Question(f"q{i}", f"What is {i} + 1?", i + 1, {"grader": "code"}) for i in range(3)]
    qs.append(Question("qa", "Who wrote Hamlet?", "Shakespeare", {"grader": "qa"}))
    out = tmp_path / "prefixes.jsonl"
    engine = ReplayEngine(["Add one.\n\nSo 1.", "Add one again.\n\nSo 2."])
    got = generate_prefixes(engine, qs[:2], out, teacher="t", batch_size=8)
    assert got == {"q0": "Thought: Add one.\n\n", "q1": "Thought: Add one again.\n\n"}
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["teacher"] == "t" and rec["prompt"].startswith("cot-v1/math")
    # generation stops at the first blank line: the rest of the answer is not the prefix's
    assert engine.calls[0]["stop"] == ["\n\n"]
    assert rec["sampling"]["temperature"] == 0.0 and rec["cot"] == "Add one."
    assert rec["finish_reason"] == "stop" and rec["stop"] == "\n\n"
    # a rerun asks only for the new questions; QA questions get the QA prompt
    engine2 = ReplayEngine(["Third.\n\nx", "Hamlet is a play.\n\n<answer>Shakespeare</answer>"])
    with open(out, "a") as f:
        f.write('{"id": "q2", "pref')  # a torn line from a crash
    got = generate_prefixes(engine2, qs, out, batch_size=8)
    engine2.assert_consumed()
    assert len(engine2.calls) == 1 and len(engine2.calls[0]["conversations"]) == 2
    assert "<answer>" in engine2.calls[0]["conversations"][1][0].content
    assert set(got) == {"q0", "q1", "q2", "qa"}
    assert load_prefixes(out) == got
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["q0", "q1", "q2", "qa"]


def test_load_prefixes_applies_todays_rule_to_an_older_file(tmp_path):
    out = tmp_path / "prefixes.jsonl"
    cot = "I'll recall the facts:\nX was born in 1901.\n<answer>X</answer>"
    rows = [{"id": "old", "prefix": f"Thought: {cot}\n\n", "cot": cot},  # written when the answer leaked in
            {"id": "nocot", "prefix": "Thought: kept as stored.\n\n"},
            {"id": "none", "prefix": None, "cot": "<answer>X</answer>"}]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_prefixes(out) == {"old": "Thought: I'll recall the facts:\n\n", "nocot": "Thought: kept as stored.\n\n"}


def test_progress_counts_only_the_questions_asked_for(tmp_path):
    out = tmp_path / "prefixes.jsonl"
    qs = [Question(f"q{i}", f"What is {i} + 1?", i + 1, {"grader": "code"}) for i in range(4)]
    generate_prefixes(ReplayEngine(["a.\n\nx"] * 3), qs[:3], out, batch_size=8)  # q0-q2 done
    seen = []
    generate_prefixes(ReplayEngine(["d.\n\nx"]), [qs[0], qs[3]], out, batch_size=8,
                      progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]  # q1, q2 in the file are not this run's questions
    seen.clear()
    generate_prefixes(ReplayEngine([]), qs, out, batch_size=8, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(4, 4)]  # all done: the bar says so at once
