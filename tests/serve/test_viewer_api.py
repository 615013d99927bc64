"""The run viewer's routes without a browser: who may load the page, its files, what it shows."""

from __future__ import annotations

import pytest

from tests.serve.helpers import asgi
from tinyact.models.engines import ReplayEngine
from tinyact.serve import RunService, ServerConfig


@pytest.mark.anyio
async def test_without_keys_the_page_is_for_loopback_clients_only():
    service = RunService(ReplayEngine([]), config=ServerConfig())
    async with asgi(service, client=("10.1.2.3", 5000)) as c:
        assert (await c.get("/")).status_code == 403
        assert (await c.get("/v1/viewer")).status_code == 403
    async with asgi(service) as c:
        page = await c.get("/")
        assert page.status_code == 200 and "viewer/viewer.js" in page.text
        js = await c.get("/viewer/viewer.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert (await c.get("/viewer/../service.py")).status_code == 404
        assert (await c.get("/v1/viewer")).json()["mode"] == "live"
