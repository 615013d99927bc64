"""The agent method for the eval runner: one Agent run per question."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tinyact.eval.runner import Prediction, prediction_from_trajectory

__all__ = ["AgentSolver"]


class AgentSolver:
    """A ``SolveBatch`` that runs the agent on each question of a batch.

    Questions of a batch run in ``parallel`` threads: their sandboxes execute
    side by side and an engine that batches concurrent calls (vLLM behind
    ``BatchingEngine``) sees several conversations at once. Each trajectory is
    appended to ``trajectories`` (JSONL) when given.
    """

    def __init__(self, agent: Any, *, parallel: int = 1, trajectories: str | os.PathLike[str] | None = None) -> None:
        self.agent = agent
        self.parallel = max(1, parallel)
        self.trajectories = trajectories
        self.last_trajectories: list[Any] = []
        """The trajectories of the last batch (a Ray worker sends them to the driver)."""

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.agent.config
        return {"model": str(self.agent.model_name), "samples": cfg.samples, "max_steps": cfg.max_steps,
                "prompt_version": self.agent.prompt_version, "temperature": cfg.temperature, "top_p": cfg.top_p,
                "repeat_notes": cfg.repeat_notes}

    def __call__(self, questions: Sequence[Any]) -> list[Prediction]:
        from tinyact.agents.trajectory import append_jsonl

        with ThreadPoolExecutor(max_workers=min(self.parallel, max(1, len(questions)))) as pool:
            results = list(pool.map(lambda q: self.agent.run(q.question), questions))
        self.last_trajectories = [r.trajectory for r in results]
        if self.trajectories is not None:
            append_jsonl(self.trajectories, [r.trajectory for r in results])
        return [prediction_from_trajectory(r.trajectory) for r in results]
