"""Shared fixtures of the eval tests: the real data folder (skip when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyact.errors import ConfigError


@pytest.fixture(scope="session")
def data_dir() -> Path:
    from tinyact.eval.datasets import shared_data_dir

    try:
        return shared_data_dir()
    except ConfigError as e:
        pytest.skip(f"real benchmark data not available: {e}")


@pytest.fixture(scope="session")
def load(data_dir: Path):
    """load(name, split=None, limit=None) on the real files, cached per session."""
    from tinyact.eval.datasets import load_benchmark

    cache: dict = {}

    def _load(name: str, split: str | None = None, limit: int | None = None):
        key = (name, split, limit)
        if key not in cache:
            cache[key] = load_benchmark(name, split, limit=limit, data_dir=data_dir)
        return cache[key]

    return _load
