"""The pipeline's eval stage: the student on a held-out benchmark with self-consistent actions (real model, data)."""

from __future__ import annotations

import json

from tinyact.distill import DistillConfig
from tinyact.distill.pipeline import Pipeline


def test_eval_stage_runs_sag_on_a_benchmark_and_resumes(tmp_path, shared_data, smollm2_path, monkeypatch):
    monkeypatch.setenv("TINYACT_SHARED_DATA", str(shared_data))
    cfg = DistillConfig(workdir=str(tmp_path / "w"), evaluation={
        "samples": 2, "max_steps": 1, "max_tokens": 16, "parallel": 1,
        "benchmarks": [{"name": "gsm-hard", "limit": 1}]})
    pipeline = Pipeline(cfg, progress=False)
    summary = pipeline.evaluate(model=str(smollm2_path))["gsm-hard"]
    assert summary["n"] == 1 and summary["samples"] == 2
    out = tmp_path / "w" / "eval" / "gsm-hard-k2"
    config = json.loads((out / "config.json").read_text())
    assert (config["samples"], config["temperature"], config["top_p"]) == (2, 0.4, 0.8)
    assert config["prompt_version"] == "short-v1" and config["method"] == "agent"
    (traj,) = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert all(len(s["candidates"]) == 2 for s in traj["steps"])  # k=2 candidate actions per step
    again = pipeline.evaluate(model=str(smollm2_path))["gsm-hard"]  # resumes: nothing new to run
    assert again["n"] == 1 and len((out / "results.jsonl").read_text().splitlines()) == 1
