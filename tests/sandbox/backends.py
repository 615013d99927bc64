"""Which sandbox backends the behavioural suites run against, and how to open them.

Used by tests/sandbox/conftest.py (the ``backend`` and ``session`` fixtures of
tests/sandbox and tests/sandbox/security). The docker backend needs a Docker
engine and the sandbox image; ``docker_skip_reason`` tries to provide both (see
tests/sandbox/docker_engine.py) and otherwise says precisely what is missing.

``TINYACT_TEST_ISOLATION`` (bwrap, unshare) pins the process backend's
isolation: tests/sandbox/test_unprivileged.py reruns the suites that way as an
unprivileged user.
"""

from __future__ import annotations

import functools
import os

import pytest

from tinyact.sandbox import Limits, Session, open_session

# docker is also "slow": the first test may start dockerd and build the image (minutes).
DOCKER = pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])
BACKENDS = ["process", DOCKER]
ISOLATION = os.environ.get("TINYACT_TEST_ISOLATION", "auto")

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
    else:
        kw.setdefault("isolation", ISOLATION)
    kw.setdefault("limits", TEST_LIMITS)
    return open_session(backend=backend, **kw)


def expected_uid(session: Session) -> int:
    """The uid code in `session` must see: never root, and one of its own where the host can give one."""
    if session.isolation == "bwrap":
        return 65534  # the user namespace maps it to the sandbox's host uid
    if session.isolation == "docker":
        return session._sandbox.uid
    if os.geteuid() == 0:
        return session._sandbox.host_uid  # a leased uid (tinyact.sandbox.uids)
    return 65534 if session.isolation == "unshare" else os.geteuid()
