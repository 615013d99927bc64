"""Evaluation spread over a real local Ray cluster: the same results file as a local run, and resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.eval.ray_cluster import REPO
from tests.eval.ray_job import run

TIMING = ("finished_at", "batch_started_at")


def normalized(folder: Path) -> list[dict]:
    """The results file line by line, without wall-clock fields."""
    out = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        for k in TIMING:
            r.pop(k)
        r["prediction"].pop("seconds")
        r["prediction"].pop("trajectory_id")
        out.append(r)
    return out


def test_a_ray_eval_writes_the_same_results_as_a_local_one(tmp_path: Path, shared_data: Path, ray_address: str):
    local = run(str(tmp_path / "local"), str(shared_data), 6)
    spread = run(str(tmp_path / "ray"), str(shared_data), 6, ray_address)
    assert local.n == spread.n == 6 and local.accuracy == spread.accuracy == 0.5
    assert normalized(tmp_path / "ray") == normalized(tmp_path / "local")
    assert [r["prediction"]["steps"] for r in normalized(tmp_path / "ray")] == [2] * 6


def test_a_killed_ray_eval_resumes_where_it_stopped(tmp_path: Path, shared_data: Path, ray_address: str):
    out = tmp_path / "ray"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "tests.eval.ray_job", str(out), str(shared_data), "8", ray_address, "0.4"]
    job = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 180
    while not (results.exists() and len(results.read_text().splitlines()) >= 2):
        assert job.poll() is None, job.stdout.read()
        assert time.monotonic() < deadline, "no results within 180 s"
        time.sleep(0.1)
    job.send_signal(signal.SIGKILL)
    job.wait(30)
    first = len(results.read_text().splitlines())
    assert 2 <= first < 8
    summary = run(str(out), str(shared_data), 8, ray_address)  # the rerun skips what is done
    assert summary.n == 8
    run(str(tmp_path / "local"), str(shared_data), 8)
    assert normalized(out) == normalized(tmp_path / "local")  # no id twice, none lost, same order


def test_cli_eval_run_with_ray_matches_the_local_cli(tmp_path: Path, shared_data: Path, ray_address: str):
    """`tinyact eval run --ray`: CoT through an OpenAI-compatible HTTP server the Ray workers call."""
    from typer.testing import CliRunner

    from tests.models.test_openai import Fake, reply
    from tinyact.eval.cli import app

    def answer(body: dict, k: int):
        q = body["messages"][-1]["content"]
        return 200, reply(1, text=f"\\boxed{{{len(q) % 7}}}"), {}

    with Fake(answer) as server:
        results = {}
        for name, extra in (("local", []), ("ray", ["--ray", ray_address, "--ray-workers", "2"])):
            out = tmp_path / name
            r = CliRunner().invoke(app, ["run", "--benchmark", "gsm-hard", "--limit", "4", "--out", str(out),
                                         "--engine", "openai", "--model", server.url, "--batch-size", "1",
                                         "--data-dir", str(shared_data), "--no-progress", *extra])
            assert r.exit_code == 0, r.output
            results[name] = normalized(out)
            assert json.loads((out / "config.json").read_text())["model"] == server.url
    assert results["ray"] == results["local"] and len(results["ray"]) == 4


def test_cli_agent_eval_with_ray_writes_the_local_config_results_and_trajectories(
        tmp_path: Path, shared_data: Path, ray_address: str):
    from typer.testing import CliRunner

    from tests.models.test_openai import Fake, reply
    from tinyact.eval.cli import app

    def answer(body: dict, k: int):
        return 200, reply(1, text="Thought: guess\nCode:\n```py\nfinal_answer(7)\n```"), {}

    with Fake(answer) as server:
        seen = {}
        for name, extra in (("local", []), ("ray", ["--ray", ray_address])):
            out = tmp_path / name
            r = CliRunner().invoke(app, ["run", "--benchmark", "gsm-hard", "--limit", "3", "--out", str(out),
                                         "--method", "agent", "--engine", "openai", "--model", server.url,
                                         "--batch-size", "1", "--max-steps", "2", "--data-dir", str(shared_data),
                                         "--no-progress", *extra])
            assert r.exit_code == 0, r.output
            config = json.loads((out / "config.json").read_text())
            trajectories = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
            seen[name] = (config, normalized(out), [(t["task"], t["final_answer"]) for t in trajectories])
    assert seen["ray"] == seen["local"]  # the driver's config is the workers' (prompt version included)
    assert len(seen["ray"][1]) == 3 and seen["ray"][0]["prompt_version"]
