"""Model engines behind one protocol: transformers, vLLM, llama.cpp, OpenAI-compatible HTTP, replay."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from tinyact.models.engines.base import Engine, apply_stop
from tinyact.models.engines.replay import ReplayEngine

__all__ = ["ENGINES", "Engine", "ReplayEngine", "apply_stop", "load_engine", "parallel_kwargs", "pick_engine"]

ENGINES = ("transformers", "vllm", "llamacpp", "openai")
ENGINE_HELP = "auto | transformers | vllm | llamacpp | openai (auto: llamacpp on a CPU host when installed, else transformers)"
"""The --engine help text every command shares."""

_LLAMACPP_KWARGS = {"n_ctx", "n_threads", "n_batch", "n_ubatch", "n_threads_batch", "flash_attn", "cache_slots",
                    "max_sequences"}  # fmt: skip


def _has_gpu() -> bool:
    """An NVIDIA GPU is present (without importing torch)."""
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def _is_gguf_model(model: str) -> bool:
    from tinyact.models.catalog import CATALOG

    if model in CATALOG:
        return CATALOG[model].kind == "causal-lm"
    p = Path(model).expanduser()
    return (p.is_file() and p.suffix.lower() == ".gguf") or (p.is_dir() and len(list(p.glob("*.gguf"))) == 1)


def pick_engine(model: str, **kwargs: Any) -> str:
    """The engine ``engine="auto"`` means for ``model``, chosen by measurement (README, "Engines").

    ``$TINYACT_ENGINE`` wins. Otherwise llama.cpp when it is installed, the host
    has no GPU, the model has a GGUF (a catalog model, a ``.gguf`` file or a
    folder with one) and the arguments are ones it takes; else transformers
    (GPUs, merged students' safetensors folders, ``dtype=...``).
    """
    env = os.environ.get("TINYACT_ENGINE")
    if env and env != "auto":
        return env
    if (
        importlib.util.find_spec("llama_cpp") is not None
        and not _has_gpu()
        and set(kwargs) <= _LLAMACPP_KWARGS
        and _is_gguf_model(model)
    ):
        return "llamacpp"
    return "transformers"


CACHED_TOKENS_PER_CONVERSATION = 8192
"""KV cells llama.cpp keeps per concurrent conversation (an agent's prompt grows each step)."""


def parallel_kwargs(engine: str, conversations: int, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """``kwargs`` completed for an engine that serves ``conversations`` at once (eval --parallel,
    distillation batches): llama.cpp gets a cache slot and 8k KV cells per conversation, so each
    agent's next step reuses its cached prompt instead of evicting the others' (8 HotpotQA agents
    in the default 16k cells re-prefilled ~10k tokens every step). Given values win."""
    kwargs = dict(kwargs or {})
    if engine == "llamacpp" and conversations > 1:
        kwargs.setdefault("cache_slots", conversations)
        kwargs.setdefault("n_ctx", max(16384, conversations * CACHED_TOKENS_PER_CONVERSATION))
    return kwargs


def load_engine(model: str, engine: str = "auto", **kwargs: Any) -> Engine:
    """Build an engine for ``model`` (a catalog name, a folder, a hub id, a .gguf file, or a URL for openai).

    ``engine`` may also be given inline as ``"vllm:qwen2.5-coder-0.5b"``;
    ``"auto"`` picks one with :func:`pick_engine`. Heavy libraries load here, not at import.
    """
    from tinyact.errors import ConfigError

    if ":" in model and model.split(":", 1)[0] in ENGINES and not model.startswith(("http:", "https:")):
        engine, model = model.split(":", 1)
    if engine == "auto":
        engine = pick_engine(model, **kwargs)
    if engine == "transformers":
        from tinyact.models.engines.transformers import TransformersEngine

        return TransformersEngine(model, **kwargs)
    if engine == "vllm":
        from tinyact.models.engines.vllm import VLLMEngine  # type: ignore[import-not-found]

        return VLLMEngine(model, **kwargs)
    if engine == "llamacpp":
        from tinyact.models.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(model, **kwargs)
    if engine == "openai":
        from tinyact.models.engines.fleet import FleetEngine, split_urls
        from tinyact.models.engines.openai import OpenAIEngine  # type: ignore[import-not-found]

        urls = split_urls(kwargs.pop("base_url", None))
        if model.startswith(("http:", "https:")) and "," in model:  # "openai:http://a/v1,http://b/v1"
            urls, model = split_urls(model), ""
        if len(urls) > 1:  # several model servers: spread the calls, fail over (see fleet.py)
            return FleetEngine.openai(urls, model, **kwargs)
        return OpenAIEngine(model, base_url=urls[0] if urls else None, **kwargs)
    raise ConfigError(f"engine must be auto or one of {', '.join(ENGINES)}, got {engine!r}")
