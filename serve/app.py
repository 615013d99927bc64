"""The FastAPI app: thin routes over ``RunService`` (auth, limits, SSE framing)."""

# No `from __future__ import annotations`: FastAPI reads the route annotations,
# and `Caller` below is local to create_app.

import hashlib
import hmac
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sse_starlette import EventSourceResponse

from tinyact.serve.chat import chat_chunks, chat_completion
from tinyact.serve.limits import BodyLimit
from tinyact.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tinyact.serve.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    Health,
    ModelList,
    Readiness,
    RunInfo,
    RunList,
    RunRequest,
)
from tinyact.serve.service import ApiError, RunService
from tinyact.serve.viewer import install_viewer

__all__ = ["create_app"]

log = logging.getLogger("tinyact.serve")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422, 429, 503)
}


def create_app(service: RunService) -> FastAPI:
    """The ASGI app for ``service`` (started and closed by the app's lifespan).

    Example:
        >>> app = create_app(RunService(ReplayEngine([...])))             # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)                 # doctest: +SKIP
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not service.config.api_keys:
            log.warning("no API key configured: only loopback clients are served (see --api-keys-file)")
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="tinyact agent API",
        version="1",
        summary="CodeAct agents over HTTP: runs, streaming steps, an OpenAI-compatible chat facade.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.service = service
    _install_errors(app, service)
    caller = _auth(service)
    Caller = Annotated[str, Depends(caller)]

    @app.get("/healthz", tags=["service"])
    async def healthz() -> Health:
        return Health()

    @app.get("/readyz", tags=["service"], responses={503: {"model": Readiness}})
    async def readyz() -> Any:
        ready = service.readiness()
        return ready if ready.ready else JSONResponse(ready.model_dump(), status_code=503)

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics(key: Caller) -> Any:
        return PlainTextResponse(service.metrics_text(), media_type=METRICS_CONTENT_TYPE)

    @app.post("/v1/runs", tags=["runs"], response_model=RunInfo,
              responses={200: {"content": {"text/event-stream": {}}}, 202: {"model": RunInfo}})
    async def create_run(body: RunRequest, key: Caller) -> Any:
        """Run a task. Waits and returns the answer and trajectory; with ``stream``, SSE
        (``run``, ``step``..., then ``final`` or ``error``; ``token`` events too with ``tokens``);
        with ``background``, 202 at once."""
        if body.stream:
            handle = service.submit(body, key)
            return EventSourceResponse(
                ({"event": kind, "data": json.dumps(data)} async for kind, data in service.events(handle)),
                headers={"X-Run-Id": handle.id},
            )
        if body.background:
            handle = service.submit(body, key)
            return JSONResponse(service.info(handle.id, key).model_dump(mode="json"), status_code=202,
                                headers={"Location": f"/v1/runs/{handle.id}"})
        return await service.run(body, key)

    @app.get("/v1/runs", tags=["runs"])
    async def list_runs(
        key: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> RunList:
        return service.list_runs(key, limit, cursor)

    @app.get("/v1/runs/{run_id}", tags=["runs"])
    async def get_run(run_id: str, key: Caller) -> RunInfo:
        return service.info(run_id, key)

    @app.get("/v1/runs/{run_id}/events", tags=["runs"], responses={200: {"content": {"text/event-stream": {}}}})
    async def run_events(run_id: str, key: Caller) -> Any:
        """A run's events as Server-Sent Events, whoever started it: ``run``, each ``step``
        (``token`` events too while it runs, if it was started with ``tokens``), ``final``/``error``."""
        events = service.watch(run_id, key)
        return EventSourceResponse({"event": kind, "data": json.dumps(data)} async for kind, data in events)

    @app.delete("/v1/runs/{run_id}", tags=["runs"])
    async def cancel_run(run_id: str, key: Caller) -> RunInfo:
        """Cancel: the run's sandbox is killed and it ends with reason ``cancelled``."""
        return await service.cancel(run_id, key)

    @app.get("/v1/tools", tags=["runs"])
    async def list_tools(key: Caller) -> dict[str, list[dict[str, str]]]:
        return {"data": [{"name": t.name, "description": t.description} for t in service.tools.values()]}

    @app.get("/v1/models", tags=["openai"])
    async def list_models(key: Caller) -> ModelList:
        return service.models()

    @app.post("/v1/chat/completions", tags=["openai"], response_model=ChatCompletion,
              responses={200: {"content": {"text/event-stream": {}}}})
    async def chat_completions(body: ChatCompletionRequest, key: Caller) -> Any:
        """OpenAI-compatible: the last user message is the task, the earlier messages the
        conversation (one agent thread across turns), the answer is the assistant's
        content, the steps and the conversation id are in the ``tinyact`` extension field."""
        if body.stream:
            chunks = chat_chunks(service, body, key)
            first = await anext(chunks)  # submit (and any 4xx) before the stream starts

            async def frames() -> AsyncIterator[dict]:
                yield {"data": first.model_dump_json(exclude_none=True)}
                async for chunk in chunks:
                    yield {"data": chunk.model_dump_json(exclude_none=True)}
                yield {"data": "[DONE]"}

            return EventSourceResponse(frames())
        return await chat_completion(service, body, key)

    @app.get("/v1/viewer", tags=["service"])
    async def viewer_info(key: Caller) -> dict[str, Any]:
        """What the run viewer at ``/`` shows: this server's live runs."""
        return {"mode": "live", "model": service.model_name, "max_samples": service.config.max_samples}

    install_viewer(app, _page_guard(service), lambda: {"mode": "live"})
    app.add_middleware(BodyLimit, max_bytes=service.config.max_body_bytes,
                       on_reject=lambda: service.metrics.request_rejected("too_large"))
    return app


# ------------------------------------------------------------------ helpers


def _auth(service: RunService):
    keys = [k.encode() for k in service.config.api_keys]

    async def caller(request: Request) -> str:
        """The caller's key id: a hash of its bearer key, or "local" when no key is configured."""
        if not keys:
            host = request.client.host if request.client else ""
            if not _loopback(host):
                service.metrics.request_rejected("not_loopback")
                raise ApiError(403, "no API key is configured on this server, so it serves loopback clients only",
                               type="permission_error")
            return "local"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            service.metrics.request_rejected("unauthorized")
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", type="authentication_error",
                           headers={"WWW-Authenticate": "Bearer"})
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, k) for k in keys):
            service.metrics.request_rejected("unauthorized")
            raise ApiError(401, "invalid API key", type="authentication_error", headers={"WWW-Authenticate": "Bearer"})
        return hashlib.sha256(given).hexdigest()[:16]

    return caller


def _page_guard(service: RunService):
    async def guard(request: Request) -> None:
        """The viewer's files: loopback only when no API key is configured, like the API; with keys the
        page is open (it holds no data, and a browser cannot send a bearer key when navigating)."""
        if not service.config.api_keys:
            host = request.client.host if request.client else ""
            if not _loopback(host):
                raise ApiError(403, "no API key is configured on this server, so it serves loopback clients only",
                               type="permission_error")

    return guard


def _loopback(host: str) -> bool:
    if host in ("localhost", "testclient"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _install_errors(app: FastAPI, service: RunService) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        message = f"{e.param}: {e.message}" if e.status == 422 and e.param else e.message
        body = {"error": {"message": message, "type": e.type, "param": e.param, "code": e.code}}
        return JSONResponse(body, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        service.metrics.request_rejected("invalid")
        errors = e.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        detail = [{"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")} for err in errors]
        body = {"error": {"message": message, "type": "invalid_request_error", "param": param or None,
                          "code": "validation_error"}, "detail": detail}
        return JSONResponse(body, status_code=422)
