"""The agent API server: runs over HTTP with SSE streaming, an OpenAI-compatible
chat facade, API keys and limits, SQLite or PostgreSQL persistence, replicas (``tinyact serve``).

    protocol.py   wire types (pydantic)          service.py  the logic (engine injected)
    app.py        thin FastAPI routes             runs.py     a live run and its events
    chat.py       the OpenAI-compatible facade    store.py    the runs table (SQLite), leases, limits
    limits.py     body limit, QueueFull           store_pg.py the runs table in PostgreSQL (replicas)
    config.py     ServerConfig                    keeper.py   leases, cancel flags, takeovers
    metrics.py    Prometheus metrics              cli.py      ``tinyact serve``
    conversations.py  multi-turn chat: a conversation is one agent thread
    execution.py  how a run executes in a replica (its thread, slot, agent, end)
    viewer.py     the run viewer (static/ files) at / and ``tinyact view``

Exports load lazily, so the CLI can list ``serve`` without importing FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ApiError": "tinyact.serve.service",
    "RunHandle": "tinyact.serve.runs",
    "RunService": "tinyact.serve.service",
    "ServerConfig": "tinyact.serve.config",
    "create_app": "tinyact.serve.app",
    "read_api_keys": "tinyact.serve.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tinyact.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # pragma: no cover
    from tinyact.serve.app import create_app
    from tinyact.serve.config import ServerConfig, read_api_keys
    from tinyact.serve.runs import RunHandle
    from tinyact.serve.service import ApiError, RunService
