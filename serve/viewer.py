"""The run viewer: static files (``static/``, no build step) over the JSON API.

``tinyact serve`` serves it at ``/`` beside the API; ``tinyact view runs.jsonl``
serves it over saved trajectories with a read-only API of the same shape
(``GET /v1/runs``, ``/v1/runs/{id}``, ``/v1/runs/{id}/events``), on loopback.
The page itself holds no data, so it needs no key; every data request carries
the API key the user gives the page (kept in the browser's localStorage).
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations,
# and Request is imported inside file_app.

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tinyact.serve.protocol import FinalEvent, RunEvent, RunInfo, RunList, RunSummary
from tinyact.schema import Trajectory

__all__ = ["STATIC", "file_app", "install_viewer", "run_info"]

STATIC = Path(__file__).parent / "static"


def install_viewer(app: Any, guard: Callable[..., Any], info: Callable[[], dict]) -> None:
    """Add ``/`` (the page), ``/viewer/...`` (its files) and ``GET /v1/viewer`` (what it shows).

    ``guard`` is a FastAPI dependency for the page's files (the API's own auth
    covers ``/v1/viewer``); ``info`` returns ``{"mode": "live" | "file", ...}``.
    """
    from fastapi import Depends, HTTPException
    from fastapi.responses import FileResponse

    @app.get("/", include_in_schema=False, dependencies=[Depends(guard)])
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/viewer/{name:path}", include_in_schema=False, dependencies=[Depends(guard)])
    async def asset(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if not path.is_file() or STATIC.resolve() not in path.parents:
            raise HTTPException(404, f"no viewer file {name!r}")
        media = "text/javascript" if path.suffix == ".js" else None  # ES modules need a JS type
        return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})

    app.state.viewer_info = info


def run_info(t: Trajectory) -> RunInfo:
    """A saved trajectory as the API shows a finished run."""
    return RunInfo(id=t.id, status="finished", task=t.task, model=t.model, created_at=t.started_at,
                   finished_at=t.started_at + t.seconds, end_reason=t.end_reason, answer=t.final_answer,
                   steps=t.steps, trajectory=t)


def file_app(path: str | os.PathLike[str]) -> Any:
    """A read-only viewer app over a trajectories JSONL file (re-read on every list)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from sse_starlette import EventSourceResponse

    from tinyact.agents.trajectory import read_jsonl

    source = Path(path)
    app = FastAPI(title="tinyact run viewer", docs_url=None, redoc_url=None)

    def runs() -> dict[str, Trajectory]:
        return {t.id: t for t in read_jsonl(source)}  # a run saved twice: the last one

    def loopback(request: Request) -> None:
        host = request.client.host if request.client else ""
        if host not in ("127.0.0.1", "::1", "localhost", "testclient"):
            raise HTTPException(403, "the file viewer serves loopback clients only")

    install_viewer(app, loopback, lambda: {"mode": "file", "source": str(source)})

    @app.get("/v1/viewer")
    async def viewer(request: Request) -> dict:
        loopback(request)
        return app.state.viewer_info()

    @app.get("/v1/runs")
    async def list_runs(request: Request, limit: int = 100) -> RunList:
        loopback(request)
        found = sorted(runs().values(), key=lambda t: t.started_at, reverse=True)[:limit]
        return RunList(data=[RunSummary(id=t.id, status="finished", task=t.task, created_at=t.started_at,
                                        finished_at=t.started_at + t.seconds, end_reason=t.end_reason,
                                        answer=t.final_answer, steps=len(t.steps)) for t in found])

    def one(run_id: str) -> RunInfo:
        t = runs().get(run_id)
        if t is None:
            raise HTTPException(404, f"no run {run_id!r} in {source}")
        return run_info(t)

    @app.get("/v1/runs/{run_id}")
    async def get_run(run_id: str, request: Request) -> RunInfo:
        loopback(request)
        return one(run_id)

    @app.get("/v1/runs/{run_id}/events")
    async def events(run_id: str, request: Request) -> Any:
        loopback(request)
        info = one(run_id)

        async def frames() -> AsyncIterator[dict]:
            yield {"event": "run", "data": RunEvent(id=info.id, status="finished").model_dump_json()}
            for step in info.steps:
                yield {"event": "step", "data": step.model_dump_json()}
            final = FinalEvent(id=info.id, status="finished", answer=info.answer, end_reason=info.end_reason,
                               steps=len(info.steps))
            yield {"event": "final", "data": json.dumps(final.model_dump(mode="json"))}

        return EventSourceResponse(frames())

    @app.post("/v1/runs")
    async def read_only() -> JSONResponse:
        return JSONResponse({"error": {"message": "this viewer shows saved runs; start runs with `tinyact serve`",
                                       "type": "invalid_request_error"}}, status_code=405)

    return app
