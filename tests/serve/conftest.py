from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serve.helpers import Gate


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open.set()
