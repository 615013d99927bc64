"""The agent API server: runs over HTTP with SSE streaming, an OpenAI-compatible
chat facade, API keys and limits, SQLite persistence (``tinyact serve``).

    protocol.py   wire types (pydantic)          service.py  the logic (engine injected)
    app.py        thin FastAPI routes             runs.py     a live run and its events
    chat.py       the OpenAI-compatible facade    store.py    the runs table (SQLite)
    limits.py     per-key queue, body limit       metrics.py  Prometheus text
    config.py     ServerConfig                    testing.py  a stateless scripted engine
"""

from __future__ import annotations

from tinyact.serve.api.app import create_app
from tinyact.serve.api.config import ServerConfig, read_api_keys
from tinyact.serve.api.runs import RunHandle
from tinyact.serve.api.service import ApiError, RunService

__all__ = ["ApiError", "RunHandle", "RunService", "ServerConfig", "create_app", "read_api_keys"]
