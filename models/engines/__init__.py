"""Model engines behind one protocol: transformers, vLLM, OpenAI-compatible HTTP, replay."""

from __future__ import annotations

from typing import Any

from tinyact.models.engines.base import Engine, apply_stop
from tinyact.models.engines.replay import ReplayEngine

__all__ = ["Engine", "ReplayEngine", "apply_stop", "load_engine"]

ENGINES = ("transformers", "vllm", "openai")


def load_engine(model: str, engine: str = "transformers", **kwargs: Any) -> Engine:
    """Build an engine for ``model`` (a catalog name, a folder, a hub id, or a URL for openai).

    ``engine`` may also be given inline as ``"vllm:qwen2.5-coder-0.5b"``.
    Heavy libraries load here, not at import.
    """
    from tinyact.errors import ConfigError

    if ":" in model and model.split(":", 1)[0] in ENGINES and not model.startswith(("http:", "https:")):
        engine, model = model.split(":", 1)
    if engine == "transformers":
        from tinyact.models.engines.transformers import TransformersEngine

        return TransformersEngine(model, **kwargs)
    if engine == "vllm":
        from tinyact.models.engines.vllm import VLLMEngine  # type: ignore[import-not-found]

        return VLLMEngine(model, **kwargs)
    if engine == "openai":
        from tinyact.models.engines.fleet import FleetEngine, split_urls
        from tinyact.models.engines.openai import OpenAIEngine  # type: ignore[import-not-found]

        urls = split_urls(kwargs.pop("base_url", None))
        if model.startswith(("http:", "https:")) and "," in model:  # "openai:http://a/v1,http://b/v1"
            urls, model = split_urls(model), ""
        if len(urls) > 1:  # several model servers: spread the calls, fail over (see fleet.py)
            return FleetEngine.openai(urls, model, **kwargs)
        return OpenAIEngine(model, base_url=urls[0] if urls else None, **kwargs)
    raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
