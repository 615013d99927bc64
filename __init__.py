"""tinyact: CodeAct agents for small language models.

The public API is re-exported lazily (PEP 562) so that ``import tinyact`` stays
light: torch, transformers, vllm, faiss and trl load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; the one table of lazy exports.
_EXPORTS: dict[str, str] = {
    "Agent": "tinyact.agents",
    "AgentConfig": "tinyact.agents",
    "AgentResult": "tinyact.agents",
    "Candidate": "tinyact.schema",
    "CodeAction": "tinyact.schema",
    "Completion": "tinyact.schema",
    "ExecResult": "tinyact.schema",
    "Message": "tinyact.schema",
    "ReplayEngine": "tinyact.models.engines",
    "SamplingParams": "tinyact.schema",
    "Step": "tinyact.schema",
    "TinyactError": "tinyact.errors",
    "Tool": "tinyact.tools",
    "Trajectory": "tinyact.schema",
    "load_engine": "tinyact.models.engines",
    "open_session": "tinyact.sandbox",
    "tool": "tinyact.tools",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinyact' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from tinyact.agents import Agent, AgentConfig, AgentResult
    from tinyact.sandbox import open_session
    from tinyact.tools import Tool, tool
    from tinyact.errors import TinyactError
    from tinyact.models.engines import ReplayEngine, load_engine
    from tinyact.schema import (
        Candidate,
        CodeAction,
        Completion,
        ExecResult,
        Message,
        SamplingParams,
        Step,
        Trajectory,
    )
