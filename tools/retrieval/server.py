"""A retriever HTTP server that answers Search-R1's `POST /retrieve`.

Request:  {"queries": ["..."], "topk": 3, "return_scores": true}
Response: {"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]} with scores,
          {"result": [[{"id", "contents"}, ...], ...]} without. `contents` is `"Title"\\ntext`.
`GET /health` says what is served.
"""

# No `from __future__ import annotations` here: FastAPI must see the request model
# defined inside create_app as a real class, not as a string it cannot resolve.
from typing import Any

from tinyact.errors import ConfigError
from tinyact.tools.retrieval.index import Index


def create_app(index: Index, *, default_topk: int = 3, max_topk: int = 100, max_queries: int = 1024) -> Any:
    """The FastAPI app serving `index`."""
    from fastapi import FastAPI, HTTPException
    from fastapi.concurrency import run_in_threadpool
    from pydantic import BaseModel, Field

    class RetrieveRequest(BaseModel):
        queries: list[str] = Field(max_length=max_queries)
        topk: int | None = None
        return_scores: bool = False

    app = FastAPI(title="tinyact retriever", version="1")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "backend": index.backend, "documents": len(index)}

    @app.post("/retrieve")
    async def retrieve(request: RetrieveRequest) -> dict[str, Any]:
        k = request.topk or default_topk  # Search-R1 treats a missing or 0 topk as the default
        if k < 0 or k > max_topk:
            raise HTTPException(status_code=422, detail=f"topk: must be in 1..{max_topk}; got {k}")
        try:
            hits = await run_in_threadpool(index.batch_search, request.queries, k)
        except ConfigError as e:
            raise HTTPException(status_code=422, detail=str(e)) from e
        if request.return_scores:
            result = [[{"document": _doc(h), "score": h.score} for h in q] for q in hits]
        else:
            result = [[_doc(h) for h in q] for q in hits]
        return {"result": result}

    return app


def _doc(hit: Any) -> dict[str, str]:
    return {"id": hit.id, "contents": hit.document.contents}


def serve(index: Index, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning", **options: Any) -> None:
    """Serve `index` until interrupted (blocks)."""
    import uvicorn

    if index.has_dense:  # load the encoder now, not on the first request
        _ = index.embedder
    uvicorn.run(create_app(index, **options), host=host, port=port, log_level=log_level)


__all__ = ["create_app", "serve"]
