"""Reports from small runs: markdown table and valid PNG plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyact.errors import ConfigError
from tinyact.eval.datasets import Benchmark, Question
from tinyact.eval.report import find_runs, k_comparison, load_run, make_report
from tinyact.eval.runner import Prediction, run_eval


def _run(out: Path, name: str, kind: str, method: str, k: int, right: int, n: int = 4) -> None:
    qs = [Question(f"{name}{i}", f"q{i}?", "42" if kind == "math" else "Paris") for i in range(n)]
    bench = Benchmark(name=name, kind=kind, split="test", questions=qs, path=Path("x"))

    def solve(batch):
        return [
            Prediction(text=("42" if kind == "math" else "Paris") if int(q.id[len(name):]) < right else "nope",
                       steps=3 if method == "agent" else 1, tokens=100 * k)
            for q in batch
        ]

    run_eval(bench, solve, out, method=method, config={"model": "tiny", "samples": k}, progress=False)


def _assert_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size[0] > 100 and img.size[1] > 100


def test_report_from_two_runs(tmp_path):
    _run(tmp_path / "runs" / "gsm-cot", "gsm-hard", "math", "cot", 1, right=1)
    _run(tmp_path / "runs" / "gsm-agent", "gsm-hard", "math", "agent", 1, right=3)
    report = make_report([tmp_path / "runs" / "gsm-cot", tmp_path / "runs" / "gsm-agent"], tmp_path / "rep")
    text = report.read_text()
    assert "| run | method | model | k | benchmark |" in text
    assert "| gsm-cot | cot | tiny | 1 | gsm-hard:test | 4 | 0.250 | math_equiv |" in text
    assert "| gsm-agent | agent | tiny | 1 | gsm-hard:test | 4 | 0.750 | math_equiv |" in text
    assert "![accuracy_by_benchmark](accuracy_by_benchmark.png)" in text
    _assert_png(tmp_path / "rep" / "accuracy_by_benchmark.png")
    assert not (tmp_path / "rep" / "accuracy_vs_k.png").exists()  # one k only


def test_report_with_several_k_and_benchmarks(tmp_path):
    runs = tmp_path / "runs"
    _run(runs / "hp-k1", "hotpotqa", "qa", "cot", 1, right=1)
    _run(runs / "hp-k8", "hotpotqa", "qa", "cot", 8, right=2)
    _run(runs / "gsm-k1", "gsm-hard", "math", "cot", 1, right=2)
    _run(runs / "gsm-k8", "gsm-hard", "math", "cot", 8, right=4)
    report = make_report([runs], tmp_path / "rep")  # a folder of run folders
    text = report.read_text()
    assert text.count("| cot | tiny |") == 4 + 2 and "| em | 0.250 |" in text  # 4 runs, 2 k-table rows
    assert "accuracy_vs_k.png" in text
    assert "| gsm-hard | cot | tiny | 4 | 0.500 | 1.000 |" in text  # the k table
    _assert_png(tmp_path / "rep" / "accuracy_vs_k.png")
    _assert_png(tmp_path / "rep" / "accuracy_by_benchmark.png")


def test_k_is_compared_on_the_questions_both_runs_answered(tmp_path):
    _run(tmp_path / "k1", "gsm-hard", "math", "cot", 1, right=1, n=4)  # q0 right of q0-q3
    _run(tmp_path / "k8", "gsm-hard", "math", "cot", 8, right=2, n=2)  # q0, q1 right of q0-q1
    _run(tmp_path / "agent", "gsm-hard", "math", "agent", 1, right=4)  # one k: no line
    runs = [load_run(p) for p in find_runs([tmp_path / "k1", tmp_path / "k8", tmp_path / "agent"])]
    assert runs[0][0].accuracy == 0.25  # over all 4 in the table ...
    rows = k_comparison(runs)
    # ... but 1 of the 2 shared questions in the comparison
    assert rows == [{"benchmark": "gsm-hard", "method": "cot", "model": "tiny", "n": 2, "accuracy": {1: 0.5, 8: 1.0}}]


def test_unfinished_runs_show_n_of_expected(tmp_path):
    out = tmp_path / "run"
    qs = [Question(f"q{i}", "?", "1") for i in range(4)]
    bench = Benchmark(name="b", kind="math", split="test", questions=qs, path=Path("x"))
    calls = []

    def crashing(batch):
        if calls:
            raise RuntimeError("crash")
        calls.append(1)
        return [Prediction(text="1") for _ in batch]

    with pytest.raises(RuntimeError):
        run_eval(bench, crashing, out, batch_size=2, progress=False)
    text = make_report([out], tmp_path / "rep").read_text()
    assert "| 2/4 | 1.000 |" in text


def test_no_run_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no run found"):
        find_runs([tmp_path])


@pytest.mark.parametrize(("code", "called"), [
    ("print(search('x'))", True),
    ("hits = [search(q) for q in qs]", True),
    ("import re\nm = re.search('a', s)", False),     # another object's method
    ("# search('x')\nprint(1)", False),               # a comment
    ("s = 'search(x)'", False),                        # a string
    ("search = 1", False),
    ("!pip install x\nsearch('y')", True),             # does not parse: the text decides
    ("!pip install x", False),
])
def test_calls_name(code, called):
    from tinyact.eval.report import calls_name

    assert calls_name(code, "search") is called
