"""The retriever server on a real uvicorn socket, called with httpx and RemoteRetriever."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tinyact.errors import ConfigError, RetrievalError
from tinyact.tools.retrieval import Document, Index, RemoteRetriever, create_app, search_tool
from tests.retrieval._paths import needs_shared

pytestmark = needs_shared


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(hybrid_index: Index) -> Iterator[str]:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(hybrid_index), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


QUERIES = ["Tinted Windows first performance", "Which city is the WorkPlay Theater in?"]


def test_search_r1_request_with_scores(server_url: str, hybrid_index: Index) -> None:
    r = httpx.post(f"{server_url}/retrieve", json={"queries": QUERIES, "topk": 3, "return_scores": True})
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2 and all(len(q) == 3 for q in result)
    item = result[0][0]
    assert set(item) == {"document", "score"} and set(item["document"]) == {"id", "contents"}
    local = hybrid_index.batch_search(QUERIES, 3)
    assert [[i["document"]["id"] for i in q] for q in result] == [[h.id for h in q] for q in local]
    doc = hybrid_index.get(item["document"]["id"])
    assert item["document"]["contents"] == f'"{doc.title}"\n{doc.text}'
    assert isinstance(item["score"], float)


def test_search_r1_request_without_scores(server_url: str) -> None:
    r = httpx.post(f"{server_url}/retrieve", json={"queries": QUERIES[:1], "topk": 2, "return_scores": False})
    result = r.json()["result"]
    assert len(result[0]) == 2 and set(result[0][0]) == {"id", "contents"}
    default = httpx.post(f"{server_url}/retrieve", json={"queries": QUERIES[:1]}).json()["result"]
    assert len(default[0]) == 3  # no topk: the server's default


def test_server_rejects_bad_requests(server_url: str) -> None:
    r = httpx.post(f"{server_url}/retrieve", json={"queries": [""], "topk": 3})
    assert r.status_code == 422 and "query: must be a non-empty string" in r.text
    assert httpx.post(f"{server_url}/retrieve", json={"queries": ["x"], "topk": -2}).status_code == 422
    assert httpx.post(f"{server_url}/retrieve", json={"topk": 3}).status_code == 422
    health = httpx.get(f"{server_url}/health").json()
    assert health["status"] == "ok" and health["documents"] > 250


def test_remote_retriever_matches_local_index(server_url: str, hybrid_index: Index) -> None:
    with RemoteRetriever(server_url) as remote:
        hits = remote.search(QUERIES[0], k=4)
        local = hybrid_index.search(QUERIES[0], k=4)
        assert [h.document for h in hits] == [h.document for h in local]
        assert [h.score for h in hits] == pytest.approx([h.score for h in local])
        assert [[h.id for h in q] for q in remote.batch_search(QUERIES, 2)] == [
            [h.id for h in q] for q in hybrid_index.batch_search(QUERIES, 2)]
        with pytest.raises(ConfigError, match="^k:"):
            remote.search("x", 0)
        text = search_tool(remote)(QUERIES[0], 2)
        assert text.startswith("Retrieved documents:\n\n===== Document 1 =====\nTitle: ")
        assert isinstance(hits[0].document, Document)


def test_remote_retriever_errors() -> None:
    with pytest.raises(ConfigError, match="^url:"):
        RemoteRetriever("localhost:8000")
    with pytest.raises(RetrievalError, match="unreachable"):
        RemoteRetriever(f"http://127.0.0.1:{_free_port()}", timeout=2).search("x")
