"""ServerConfig: every knob of the agent API server, validated once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tinyact.errors import ConfigError

__all__ = ["ServerConfig", "read_api_keys"]


@dataclass
class ServerConfig:
    db: str = ":memory:"
    """Where the runs table and the LangGraph checkpoints live: a SQLite file (one
    machine), or a ``postgresql://`` URL that several replicas share."""
    replica_id: str = ""
    """This process's name in the runs table (the owner of its runs' leases); empty:
    host, pid and a random suffix. A restarted process with the same id takes its
    own unfinished runs back at once instead of waiting for their leases to expire."""
    lease_ttl: float = 15.0
    """Seconds a run's lease lasts without renewal (renewed every third of it); a
    replica dead for this long has its runs taken over by another."""
    poll_interval: float = 0.2
    """Seconds between looks at the database for cancel flags and free slots."""
    api_keys: tuple[str, ...] = ()
    """Accepted bearer keys; none means loopback clients only (with a warning)."""
    max_active_per_key: int = 4
    """Runs of one key executing at once."""
    max_queued_per_key: int = 16
    """Runs of one key waiting for a slot; beyond it requests get 429."""
    max_body_bytes: int = 1_000_000
    """Largest request body; larger ones get 413."""
    default_max_steps: int = 5
    max_steps_limit: int = 20
    """Requests asking for more steps get 422."""
    default_samples: int = 1
    max_samples: int = 8
    """Requests asking for more samples get 422."""
    run_timeout: float = 300.0
    """Wall-clock seconds per run (its time budget)."""
    exec_timeout: float = 10.0
    """Seconds one code action may run."""
    on_restart: Literal["interrupt", "resume"] = "interrupt"
    """What happens at start-up to runs a previous process left unfinished."""
    sandbox: str = "auto"
    """auto | process | docker: one sandbox per run, closed when the run ends (unless ``sandbox_reuse``)."""
    sandbox_pool: int = 4
    """Fresh sandboxes kept started ahead of the runs that will take them (0: start one per run
    when it begins). Each run still gets a new process of its own."""
    sandbox_reuse: bool = False
    """Opt-in: reuse a sandbox between runs of the same API key, one run at a time, after a
    reset (every process of the previous run killed, the files it could write and its IPC
    objects wiped, a fresh executor). Faster; less isolated than a new sandbox per run
    (see docs/deploy.md). Process backend with bwrap or unshare only."""
    retry_after: int = 2
    """Seconds suggested by ``Retry-After`` on 429."""
    batch_max: int = 32
    """Most conversations the BatchingEngine merges into one engine call."""
    batch_window_ms: float = 5.0
    """How long a proposal waits for others to join its engine call."""
    engine_parallel: int = 1
    """Engine calls in flight at once: 1 for in-process engines (transformers,
    offline vLLM), more for an HTTP model server (``vllm serve``)."""
    agent_options: dict = field(default_factory=dict)
    """Other ``AgentConfig`` fields for every run (prompt, max_tokens, ...)."""

    def __post_init__(self) -> None:
        for name in ("max_active_per_key", "max_body_bytes", "default_max_steps", "max_steps_limit",
                     "default_samples", "max_samples", "retry_after", "batch_max", "engine_parallel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sandbox_pool < 0:
            raise ConfigError(f"sandbox_pool must be >= 0, got {self.sandbox_pool}")
        if self.max_queued_per_key < 0:
            raise ConfigError(f"max_queued_per_key must be >= 0, got {self.max_queued_per_key}")
        if self.lease_ttl <= 0 or self.poll_interval <= 0:
            raise ConfigError("lease_ttl and poll_interval must be > 0")
        if self.run_timeout <= 0 or self.exec_timeout <= 0:
            raise ConfigError("run_timeout and exec_timeout must be > 0")
        if self.on_restart not in ("interrupt", "resume"):
            raise ConfigError(f"on_restart must be interrupt or resume, got {self.on_restart!r}")
        self.default_max_steps = min(self.default_max_steps, self.max_steps_limit)
        self.default_samples = min(self.default_samples, self.max_samples)
        self.api_keys = tuple(k for k in self.api_keys if k)


def read_api_keys(path: str | None = None, env: str = "TINYACT_API_KEYS") -> tuple[str, ...]:
    """Keys from a file (one a line, ``#`` comments) and/or the env var (comma-separated)."""
    keys: list[str] = []
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"cannot read the API keys file {path}: {e.strerror}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    keys += [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]
    return tuple(dict.fromkeys(keys))
