"""Which sandbox backends the behavioural suites run against, and how to open them.

Imported by the conftest files of tests/sandbox and tests/security. The docker
backend needs a Docker engine and the sandbox image; ``docker_skip_reason``
tries to provide both (see tests/sandbox/docker_engine.py) and otherwise says
precisely what is missing.
"""

from __future__ import annotations

import functools

import pytest

from tinyact.sandbox import Limits, Session, open_session

# docker is also "slow": the first test may start dockerd and build the image (minutes).
DOCKER = pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])
BACKENDS = ["process", DOCKER]

# Small limits keep the resource tests fast; each test may pass its own.
TEST_LIMITS = Limits(memory_mb=256, cpu_s=5, timeout_s=5, processes=48, scratch_mb=64, file_size_mb=16)


@functools.cache
def docker_skip_reason() -> str | None:
    from tests.sandbox.docker_engine import ensure_docker

    return ensure_docker()


def open_backend(backend: str, **kw) -> Session:
    if backend == "docker":
        reason = docker_skip_reason()
        if reason:
            pytest.skip(reason)
    kw.setdefault("limits", TEST_LIMITS)
    return open_session(backend=backend, **kw)
