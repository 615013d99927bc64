"""The agent method through the eval runner, driven by ReplayEngine."""

from __future__ import annotations

import json

from tinyact import Agent, ReplayEngine
from tinyact.eval.agent_solver import AgentSolver
from tinyact.eval.datasets import load_benchmark
from tinyact.eval.runner import run_eval


def test_agent_solver_grades_final_answers_and_saves_trajectories(tmp_path, shared_data):
    bench = load_benchmark("gsm-hard", data_dir=shared_data, limit=2)
    golds = [q.answer for q in bench.questions]
    script = [f"Thought: compute\nCode:\n```py\nfinal_answer({golds[0]!r})\n```", "Thought: no idea, no code"]
    agent = Agent(ReplayEngine(script + ["Final answer: 0"]), max_steps=1)
    solver = AgentSolver(agent, trajectories=tmp_path / "trajectories.jsonl")
    summary = run_eval(bench, solver, tmp_path, method="agent", config=solver.config, progress=False)
    assert summary.n == 2 and summary.accuracy == 0.5
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["prediction"]["format_error"] for r in results] == [False, True]
    assert len((tmp_path / "trajectories.jsonl").read_text().splitlines()) == 2
