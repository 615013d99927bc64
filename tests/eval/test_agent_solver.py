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


def test_tool_use_counts_answers_whose_code_called_search(tmp_path, shared_data):
    """Which answers searched at all, read back from the run's trajectories: a real agent run (ReplayEngine
    scripts the model, the sandbox runs the code and calls the host's search tool)."""
    from tinyact.eval.report import tool_use
    from tinyact.eval.runner import load_results
    from tinyact.tools import tool

    queries = []

    @tool
    def search(query: str) -> str:
        """Passages about the query."""
        queries.append(query)
        return "Paris is the capital of France."

    bench = load_benchmark("hotpotqa-distractor", data_dir=shared_data, limit=3)
    script = [
        'Thought: look it up\nCode:\n```py\nhits = search("capital of France")\nprint(hits)\n```',
        "Thought: found\nCode:\n```py\nfinal_answer('Paris')\n```",
        # re.search is not the tool; a comment naming it is not a call
        "Thought: from memory\nCode:\n```py\nimport re\n# search('x') would help\n"
        "final_answer(re.search('P.*', 'Paris').group())\n```",
        "Thought: memory\nCode:\n```py\nfinal_answer('Lyon')\n```",
    ]
    agent = Agent(ReplayEngine(script), tools=[search], max_steps=2)
    solver = AgentSolver(agent, trajectories=tmp_path / "trajectories.jsonl")
    run_eval(bench, solver, tmp_path, method="agent", config=solver.config, progress=False, batch_size=1)
    results = load_results(tmp_path)
    assert queries == ["capital of France"] and len(results) == 3
    assert tool_use(tmp_path, "search", results) == 1 / 3
    assert tool_use(tmp_path, "search", results[1:]) == 0.0  # only the answers asked about count
    assert tool_use(tmp_path, "final_answer", results) == 1.0  # every answer called it, in its last step
    (tmp_path / "trajectories.jsonl").unlink()
    assert tool_use(tmp_path, "search", results) is None  # no trajectories (a CoT run): unknown, not 0
