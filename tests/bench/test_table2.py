"""Table 2 from real run folders (written by eval's own runner on real benchmark questions): the numbers,
an unfinished cell marked and left out of the average, the plot, and the teacher section on shared ids only."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from tinyact.bench.table2 import cot_outcomes, load_rows, main, report, teacher_outcomes, teacher_table
from tinyact.eval.datasets import load_benchmark
from tinyact.eval.metrics import token_f1
from tinyact.eval.runner import Prediction, run_eval
from tinyact.schema import CodeAction, ExecResult, Step, Trajectory


def _solver(right: set[int], *, tokens: int, crash_after: int | None = None, partial: set[int] = frozenset(),
            trajectories=None, searched: set[int] = frozenset()):
    """Answers the i-th question right when i is in ``right`` (gold plus a word when in ``partial``), else
    wrongly; raises once ``crash_after`` questions were answered (a run killed half-way). With a
    ``trajectories`` file, writes each answer's trajectory there: its code calls search() when i is in
    ``searched``."""
    seen = []

    def solve(batch):
        if crash_after is not None and len(seen) >= crash_after:
            raise RuntimeError("killed")
        out = []
        for q in batch:
            i = len(seen)
            seen.append(q.id)
            gold = q.answer[0] if isinstance(q.answer, list) else q.answer
            text = str(gold) if i in right else (f"{gold} perhaps" if i in partial else "no idea")
            tid = None
            if trajectories is not None:
                code = ("print(search('x'))\n" if i in searched else "") + f"final_answer({text!r})"
                t = Trajectory(task=q.question, steps=[Step(index=0, model_output="", action=CodeAction(code=code),
                                                            observation="")])
                trajectories.parent.mkdir(parents=True, exist_ok=True)
                with trajectories.open("a") as f:
                    f.write(t.to_jsonl() + "\n")
                tid = t.id
            out.append(Prediction(text=text, tokens=tokens, trajectory_id=tid))
        return out

    return solve


def _run(folder, bench, solver, limit=4):
    try:
        run_eval(load_benchmark(bench, limit=limit), solver, folder / bench, limit=limit, batch_size=2,
                 method="agent", config={"model": folder.name}, progress=False)
    except RuntimeError:
        pass


@pytest.fixture()
def rows(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("TINYACT_SHARED_DATA", str(shared_data))
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, "gsm-hard", _solver({0, 1, 2}, tokens=10))                      # 3/4
    _run(a, "math500", _solver({0}, tokens=20))                             # 1/4
    _run(a, "hotpotqa-distractor", _solver({0}, tokens=30, partial={2},     # EM 1/4, F1 beside,
                                           trajectories=a / "hotpotqa-distractor" / "trajectories.jsonl",
                                           searched={1, 2, 3}))                 # 3 of 4 searched
    _run(b, "gsm-hard", _solver({0, 1}, tokens=10))                         # 2/4
    _run(b, "math500", _solver({0, 1}, tokens=10, crash_after=2))           # killed after 2 of 4: 2/2
    # no hotpotqa-distractor run for b
    return a, b


def test_numbers_partial_cells_and_average(rows, tmp_path, shared_data):
    a, b = rows
    table = load_rows([f"agent-distilled=x={a}", f"cot-distilled={b}"])
    assert [r.label for r in table] == ["agent-distilled=x", "cot-distilled"]  # the last '=' splits
    ra, rb = table
    hotpot = load_benchmark("hotpotqa-distractor", limit=4).questions[2].answer
    gold = hotpot[0] if isinstance(hotpot, list) else hotpot
    f1 = (1.0 + token_f1(f"{gold} perhaps", gold)) / 4
    assert ra.cells["hotpotqa-distractor"].summary.mean_f1 == pytest.approx(f1) and 0.25 < f1 < 0.5
    assert ra.average() == (pytest.approx((0.75 + 0.25 + 0.25) / 3), [])
    assert ra.mean_tokens == 20  # 4 answers each of 10, 20, 30 tokens
    assert not rb.cells["math500"].complete and rb.cells["math500"].summary.n == 2
    assert rb.average() == (pytest.approx(0.5), ["math500", "hotpotqa-distractor"])  # only gsm-hard counts

    out = tmp_path / "results" / "table2.md"
    data = report(table, ["gsm-hard", "math500", "hotpotqa-distractor"], [], out, Console(quiet=True))
    text = out.read_text()
    header, _, line_a, line_b = text.splitlines()[2:6]
    assert header.split(" | ")[1:7] == ["GSM-Hard", "MATH-500", "HotpotQA-distractor EM", "F1", "searched",
                                        "average"]
    cells_a = [c.strip() for c in line_a.strip("|").split("|")]
    assert cells_a[1:6] == ["0.750", "0.250", "0.250", f"{f1:.3f}", "75%"]
    assert cells_a[6] == f"{(0.75 + 0.25 + 0.25) / 3:.3f}" and cells_a[7] == "4 / 4 / 4" and cells_a[8] == "20"
    cells_b = [c.strip() for c in line_b.strip("|").split("|")]
    assert cells_b[1:7] == ["0.500", "1.000 (2/4)", "—", "—", "—", "0.500*"]
    assert cells_b[7] == "4 / 2 / —"
    assert "cot-distilled: math500, hotpotqa-distractor" in text
    assert (tmp_path / "results" / "table2.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "results" / "table2.json").read_text()) == json.loads(json.dumps(data))
    assert data["rows"][1]["cells"]["math500"] == {"accuracy": 1.0, "f1": None, "n": 2, "expected": 4,
                                                   "model": "b", "searched": None}
    assert data["rows"][0]["cells"]["hotpotqa-distractor"]["searched"] == 0.75


def test_expected_n_from_the_command_line(rows):
    a, _ = rows
    (row,) = load_rows([f"a={a}"], ["gsm-hard"], expected=50)  # 4 of the 50 asked for
    assert not row.cells["gsm-hard"].complete and row.average() == (None, ["gsm-hard"])


def _traj(qid: str, source: str, answer, gold, correct=None) -> str:
    step = Step(index=0, model_output="Thought: t", action=CodeAction(code=f"final_answer({answer!r})"),
                observation="", result=ExecResult(called_final_answer=True, final_answer=answer))
    meta = {"question_id": qid, "gold": gold, "grader": "math" if source.startswith("math") else "qa",
            "source": source}
    if correct is not None:
        meta["correct"] = correct
    return Trajectory(task="?", steps=[step], final_answer=answer, end_reason="final_answer",
                      metadata=meta).to_jsonl() + "\n"


def test_teacher_section_counts_only_shared_ids(tmp_path, capsys):
    with_prefix, without = tmp_path / "with", tmp_path / "without"
    with_prefix.mkdir()
    without.mkdir()
    (with_prefix / "trajectories.jsonl").write_text(
        _traj("math-train-1", "math:train", "4", "4")                       # right (graded now, as filter does)
        + _traj("math-train-2", "math:train", "5", "4", correct=True)       # the recorded grade wins
        + _traj("math-train-medium-3", "math:train-medium", "7", "7")
        + _traj("hotpotqa-distractor-train-4", "hotpotqa-distractor:train", "Paris", "Paris")
        + _traj("math-train-9", "math:train", "9", "9"))                    # not in the other file: left out
    (without / "trajectories.jsonl").write_text(
        _traj("math-train-1", "math:train", "3", "4")
        + _traj("math-train-2", "math:train", "4", "4")
        + _traj("math-train-medium-3", "math:train-medium", "1", "7")
        + _traj("hotpotqa-distractor-train-4", "hotpotqa-distractor:train", "Paris", "Paris")
        + _traj("math-train-1", "math:train", "4", "4"))                    # a second run of an id: the first counts
    rows = [("with prefix", teacher_outcomes(with_prefix)), ("without prefix", teacher_outcomes(without))]
    header, body, shared = teacher_table(rows)
    assert shared == 4
    assert header == ["teacher", "MATH L4-5", "MATH L2-3", "HotpotQA", "all", "in file"]
    assert body[0] == ["with prefix", "1.000 (2/2)", "1.000 (1/1)", "1.000 (1/1)", "1.000 (4/4)", "5"]
    assert body[1] == ["without prefix", "0.500 (1/2)", "0.000 (0/1)", "1.000 (1/1)", "0.500 (2/4)", "4"]

    assert cot_outcomes(tmp_path) is None  # no cot.jsonl: no CoT row
    (with_prefix / "cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "math-train-1", "correct": False}, {"id": "math-train-2", "correct": True},   # source from the id
        {"id": "hotpotqa-distractor-train-4", "correct": True}, {"id": "math-train-9", "correct": True}]))
    out = tmp_path / "t.md"
    main(["--teacher", f"with prefix={with_prefix}", "--teacher", f"without prefix={without}",
          "--cot", str(with_prefix), "--out", str(out)])
    text = out.read_text()
    assert "Accuracy on the 3 training question ids every row shares" in text  # id 3 has no CoT answer
    assert "| CoT answers | 0.500 (1/2) | 1.000 (1/1) | 0.667 (2/3) | 4 |" in text
    assert "| with prefix | 1.000 (2/2) | 1.000 (1/1) | 1.000 (3/3) | 5 |" in text
    assert not (tmp_path / "t.png").exists()  # no model rows: no bars


def test_first_compares_rows_on_the_same_questions(rows, tmp_path):
    a, b = rows
    ra, rb = load_rows([f"a={a}", f"b={b}"], first=2)
    assert ra.cells["gsm-hard"].summary.n == 2 and ra.cells["gsm-hard"].summary.accuracy == 1.0  # 2 of its 3 right
    assert ra.cells["math500"].summary.accuracy == 0.5
    assert ra.cells["hotpotqa-distractor"].searched == 0.5  # of the first 2, question 1 searched
    assert rb.cells["math500"].complete  # killed after 2 of 4: whole on the first 2
    assert rb.average() == (1.0, ["hotpotqa-distractor"])
    empty = tmp_path / "c"
    _run(empty, "gsm-hard", _solver({0}, tokens=10, crash_after=0))  # killed in its first batch: no answer
    (rc,) = load_rows([f"c={empty}"])
    assert (empty / "gsm-hard" / "config.json").is_file() and rc.cells["gsm-hard"] is None  # shown "—", not 0.000
    out = tmp_path / "first.md"
    main(["--row", f"a={a}", "--row", f"b={b}", "--first", "2", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("# Table 2 on each benchmark's first 2 questions")
    assert "| 2 / 2 / 2 |" in text and json.loads(out.with_suffix(".json").read_text())["first"] == 2
    with pytest.raises(SystemExit):
        main(["--row", f"a={a}", "--first", "0"])
