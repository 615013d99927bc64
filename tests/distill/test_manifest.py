"""Train/test overlap on the paper's real data, and the manifests the pipeline writes beside its data files."""

from __future__ import annotations

import hashlib
import json

import pytest

from tinyact.distill import DistillConfig
from tinyact.distill.manifest import read_manifest
from tinyact.distill.overlap import check_overlap, find_overlap, normalize_question, held_out_sets
from tinyact.distill.pipeline import Pipeline
from tinyact.errors import ConfigError
from tinyact.eval.datasets import Question, load_benchmark

from .fakes import ExprEngine


def test_normalized_text_matches():
    assert normalize_question("Who directed  Jaws?") == normalize_question("who directed jaws")
    a, b = Question("t1", "Who directed Jaws?", "x"), Question("e9", "who directed jaws", "x")
    assert find_overlap([a], [b]) == [("t1", "e9")]
    assert find_overlap([a], [Question("e1", "Who directed Jaws 2?", "x")]) == []


def test_the_papers_training_sets_do_not_overlap_any_test_set(shared_data):
    train = [q for name, split in [("hotpotqa", "train"), ("math", "train"), ("math", "train-medium")]
             for q in load_benchmark(name, split, data_dir=shared_data).questions]
    tests = held_out_sets(data_dir=shared_data)
    assert {b.name for b in tests} >= {"hotpotqa", "math500", "gsm-hard", "hotpotqa-distractor", "aime"}
    report = check_overlap(train, tests)
    assert report.clean and report.train_questions == len(train) >= 2900


def test_hotpotqa_distractor_train_overlaps_the_papers_hotpotqa_test(shared_data):
    train = load_benchmark("hotpotqa-distractor", "train", data_dir=shared_data).questions
    tests = held_out_sets(["hotpotqa", "hotpotqa-distractor"], data_dir=shared_data)
    report = check_overlap(train, tests, strict=False)
    assert len(report.overlap["hotpotqa:test"]) == 21 and "hotpotqa-distractor:test" not in report.overlap
    with pytest.raises(ConfigError, match=r"hotpotqa:test: 21 \(e\.g\. train "):
        check_overlap(train, tests)


def test_collect_refuses_overlapping_training_questions(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("TINYACT_SHARED_DATA", str(shared_data))
    cfg = DistillConfig(workdir=str(tmp_path / "w"), teacher="no-such-model", use_prefix=False,
                        tasks=[{"source": "benchmark", "name": "hotpotqa-distractor", "split": "dev", "n": 300}])
    with pytest.raises(ConfigError, match="hotpotqa:test: 26"):
        Pipeline(cfg, progress=False).collect()  # before any model is loaded
    cfg.tasks[0].name, cfg.tasks[0].split, cfg.tasks[0].n = "hotpotqa", "train", 50
    assert Pipeline(cfg, progress=False).overlap()["clean"] is True


def test_pipeline_writes_manifests_beside_the_data_and_a_copy(tmp_path):
    tasks = tmp_path / "q.jsonl"
    tasks.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {e}?", "answer": a}) + "\n"
                             for i, (e, a) in enumerate([("6*7", 42), ("2**10", 1024), ("3+4", 8)])))
    keep = tmp_path / "git" / "manifests"
    cfg = DistillConfig(workdir=str(tmp_path / "w"), teacher="expr-teacher", use_prefix=False, batch_size=1,
                        max_steps=2, check_overlap=False, manifest_dir=str(keep),
                        tasks=[{"source": "jsonl", "path": str(tasks), "grader": "code"}])
    pipeline = Pipeline(cfg, progress=False)
    pipeline._engine = ExprEngine()  # the teacher: a deterministic fake feeding the real agent and sandbox
    assert pipeline.collect()["solved"] == 2
    pipeline.filter()
    assert pipeline.sft_data() == 2

    m = read_manifest(pipeline.paths["trajectories"])
    data = pipeline.paths["trajectories"].read_bytes()
    assert m["kind"] == "teacher-trajectories" and m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["lines"] == 3 and m["counts"]["done"] == 3 and m["counts"]["solved"] == 2
    assert m["settings"]["teacher"] == "expr-teacher" and m["settings"]["max_steps"] == 2
    assert m["prompt_versions"] == ["full-v2"] and m["with_prefix"] == 0
    assert m["questions"]["count"] == 3 and len(m["questions"]["sha256"]) == 64
    kept = read_manifest(pipeline.paths["kept"])
    assert kept["counts"]["kept"] == 2 and kept["counts"]["rejected"]["wrong_answer"] == 1 and kept["lines"] == 2
    sft = read_manifest(pipeline.paths["sft"])
    assert sft["counts"]["examples"] == 2 and sft["student_prompt"] == "short"
    assert sft["sha256"] == hashlib.sha256(pipeline.paths["sft"].read_bytes()).hexdigest()
    copies = sorted(p.name for p in keep.iterdir())
    assert copies == ["kept.jsonl.manifest.json", "sft.jsonl.manifest.json", "trajectories.jsonl.manifest.json"]


def test_cpu_paper_config_trains_on_no_held_out_question(tmp_path, shared_data, monkeypatch):
    from pathlib import Path

    from tinyact.distill import load_config

    monkeypatch.setenv("TINYACT_SHARED_DATA", str(shared_data))
    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "distill-cpu-paper.yaml")
    assert cfg.manifest_dir and cfg.check_overlap and cfg.evaluation.samples == 1
    cfg.workdir = str(tmp_path / "w")
    report = Pipeline(cfg, progress=False).overlap()
    assert report["clean"] and report["train_questions"] == 3 * 48
    assert set(report["test_questions"]) == {"gsm-hard:test", "math500:test", "hotpotqa-distractor:test"}
