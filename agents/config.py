"""AgentConfig: every knob of a run, validated once."""

from __future__ import annotations

from dataclasses import dataclass

from tinyact.errors import ConfigError
from tinyact.schema import SamplingParams

__all__ = ["AgentConfig"]

STOP = ["<end_code>", "Observation:", "Calling tools:"]


@dataclass
class AgentConfig:
    max_steps: int = 5
    """Action steps before the loop asks for a final answer (paper: 5)."""
    samples: int = 1
    """k candidate actions per step; 1 is greedy with no voting (paper: 8)."""
    temperature: float | None = None
    """Sampling temperature; default 0 for k=1, 0.4 for k>1 (paper)."""
    top_p: float | None = None
    """Nucleus mass; default 1.0 for k=1, 0.8 for k>1 (paper)."""
    max_tokens: int = 512
    """New tokens per model call."""
    exec_timeout: float = 10.0
    """Seconds one code action may run before it is killed."""
    time_budget: float | None = None
    """Wall-clock seconds for the whole run; None is unlimited."""
    token_budget: int | None = None
    """Prompt + completion tokens for the whole run; None is unlimited."""
    prompt: str = "full"
    """System prompt: "full" (worked examples) or "short" (distilled students), or a
    pinned version id such as "full-v1"."""
    approve_code: bool = False
    """Interrupt before each code action for a human to approve, edit or reject."""
    parallel: int = 8
    """Candidates executed at once when k > 1."""
    seed: int | None = None
    """Sampling seed (first call); later calls derive from it."""
    repeat_notes: bool = True
    """Loop detection (agents/loops.py): note an action identical to an earlier step's in its
    observation and, with k > 1, prefer candidates that do something new. False is the ablation."""

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.samples < 1:
            raise ConfigError(f"samples must be >= 1, got {self.samples}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.exec_timeout <= 0:
            raise ConfigError(f"exec_timeout must be > 0, got {self.exec_timeout}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise ConfigError(f"time_budget must be > 0, got {self.time_budget}")
        if self.token_budget is not None and self.token_budget < 1:
            raise ConfigError(f"token_budget must be >= 1, got {self.token_budget}")
        if self.parallel < 1:
            raise ConfigError(f"parallel must be >= 1, got {self.parallel}")
        if self.approve_code and self.samples > 1:
            raise ConfigError("approve_code works with samples=1 only (k>1 executes candidates to vote)")
        if self.temperature is None:
            self.temperature = 0.0 if self.samples == 1 else 0.4
        if self.top_p is None:
            self.top_p = 1.0 if self.samples == 1 else 0.8
        if self.samples > 1 and self.temperature == 0:
            raise ConfigError("samples > 1 needs temperature > 0 (k greedy samples are identical)")
        self.sampling()  # validates temperature / top_p ranges

    def sampling(self, step: int = 0) -> SamplingParams:
        seed = None if self.seed is None else self.seed + step
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, seed=seed)

    @property
    def stop(self) -> list[str]:
        return list(STOP)
