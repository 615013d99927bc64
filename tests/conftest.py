"""Shared fixtures: real data from ../shared, real small models from the catalog."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.eval.ray_cluster import ray_address  # noqa: F401 - one local Ray head for the whole session

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("TINYACT_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"needs the shared data folder at {path} (set TINYACT_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The catalog's smallest model, prepared once (cached in $TINYACT_HOME)."""
    from tinyact.models.catalog import model_path

    return model_path("smollm2-135m")


@pytest.fixture(scope="session")
def smol_engine(smollm2_path):
    from tinyact.models.engines.transformers import TransformersEngine

    return TransformersEngine(str(smollm2_path))
