"""Fixtures of the sandbox suites (tests/sandbox and tests/sandbox/security): one per backend."""

from __future__ import annotations

import pytest

from tests.sandbox.backends import BACKENDS, open_backend


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def session(backend):
    s = open_backend(backend)
    yield s
    s.close()
