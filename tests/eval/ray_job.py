"""A scripted agent evaluation, for the Ray tests: the same solver locally or spread over Ray.

    python -m tests.eval.ray_job OUT DATA_DIR LIMIT [RAY_ADDRESS] [DELAY]

The scripted model answers the gold value of every question whose position is
even and a wrong one otherwise, so the results file has both grades.
"""

from __future__ import annotations

import functools
import sys
from typing import Any


def scripts(golds: dict[str, Any], task: str) -> list[str]:
    from tinyact.models.engines.scripted import act

    order = sorted(golds)
    answer = golds[task] if order.index(task) % 2 == 0 else "-1"
    return [act("x = 1\nprint(x)"), act(f"final_answer({answer!r})")]


def make_teacher(golds: dict[str, Any]) -> Any:
    """A scripted teacher agent (here, not in a test module: Ray workers import it by name,
    and a test module's name depends on the checkout folder)."""
    from tinyact.agents import Agent
    from tinyact.models.engines.scripted import ScriptedEngine

    return Agent(ScriptedEngine(functools.partial(scripts, golds)), max_steps=3, sandbox="process")


def make_solver(golds: dict[str, Any], delay: float = 0.0) -> Any:
    """The AgentSolver each Ray worker builds (its own engine and sandboxes)."""
    from tinyact.agents import Agent
    from tinyact.eval.agent_solver import AgentSolver
    from tinyact.models.engines.scripted import ScriptedEngine

    engine = ScriptedEngine(functools.partial(scripts, golds), delay=delay)
    return AgentSolver(Agent(engine, max_steps=3, sandbox="process"))


def run(out: str, data_dir: str, limit: int, address: str | None = None, delay: float = 0.0) -> Any:
    from tinyact.eval.datasets import load_benchmark
    from tinyact.eval.distributed import RaySolve
    from tinyact.eval.runner import run_eval

    bench = load_benchmark("gsm-hard", data_dir=data_dir, limit=limit)
    golds = {q.question: q.answer for q in bench.questions}
    factory = functools.partial(make_solver, golds, delay)
    solver: Any = factory() if address is None else RaySolve(factory, address=address, workers=2)
    return run_eval(bench, solver, out, batch_size=1, method="agent", config={"model": "scripted"}, progress=False)


if __name__ == "__main__":
    out, data_dir, limit, *rest = sys.argv[1:]
    run(out, data_dir, int(limit), rest[0] if rest else None, float(rest[1]) if len(rest) > 1 else 0.0)
