"""Teacher collection spread over a real local Ray cluster: the same trajectories as a local one, resumable."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tests.eval.ray_job import make_teacher
from tinyact.distill.collect import collect_trajectories, done_question_ids


def lines(path: Path) -> dict[str, dict]:
    out = {}
    for line in path.read_text().splitlines():
        t = json.loads(line)
        out[t["metadata"]["question_id"]] = {"answer": t["final_answer"], "meta": t["metadata"],
                                             "code": [s["action"]["code"] for s in t["steps"]]}
    return out


def test_ray_collection_matches_local_and_resumes(tmp_path: Path, shared_data: Path, ray_address: str):
    from tinyact.eval.datasets import load_benchmark

    questions = load_benchmark("gsm-hard", data_dir=shared_data, limit=6).questions
    golds = {q.question: q.answer for q in questions}
    factory = functools.partial(make_teacher, golds)
    prefixes = {questions[0].id: "Thought: "}
    local = collect_trajectories(factory(), questions, tmp_path / "local.jsonl", prefixes=prefixes, workers=2,
                                 progress=False)
    assert local.done == 6 and local.solved == 3
    out = tmp_path / "ray.jsonl"
    first = collect_trajectories(factory, questions[:2], out, prefixes=prefixes, ray=ray_address, workers=2,
                                 progress=False)
    assert first.done == 2 and done_question_ids(out) == {q.id for q in questions[:2]}
    summary = collect_trajectories(factory, questions, out, prefixes=prefixes, ray=ray_address, workers=2,
                                   progress=False)  # the rerun runs only the 4 not done
    assert summary.done == 6 and summary.solved == 3 and summary.failed_runs == 0
    assert len(out.read_text().splitlines()) == 6
    assert lines(out) == lines(tmp_path / "local.jsonl")
    assert lines(out)[questions[0].id]["meta"]["prefix_used"] is True
