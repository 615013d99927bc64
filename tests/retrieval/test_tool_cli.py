"""The agent-facing search() function, the public API surface, and the `tinyact index` CLI."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tinyact.tools.retrieval as retrieval
from tinyact.errors import ConfigError
from tinyact.tools.retrieval import Document, ScoredDocument, format_hits, search_tool
from tinyact.tools.retrieval.cli import app
from tests.retrieval._paths import needs_shared


class _Fixed:
    def __init__(self, hits: list[ScoredDocument]) -> None:
        self.hits, self.calls = hits, []

    def search(self, query: str, k: int = 3) -> list[ScoredDocument]:
        self.calls.append((query, k))
        return self.hits[:k]


HITS = [ScoredDocument(Document(str(i), f"T{i}", f"text {i}"), 1.0 - i / 10) for i in range(5)]


def test_search_tool_signature_docstring_and_format() -> None:
    search = search_tool(_Fixed(HITS))
    assert search.__name__ == "search"
    sig = inspect.signature(search)
    assert list(sig.parameters) == ["query", "k"] and sig.parameters["k"].default == 3
    assert "Args:" in (search.__doc__ or "") and "query" in search.__doc__
    assert search("anything", 2) == (
        "Retrieved documents:\n\n===== Document 1 =====\nTitle: T0\ntext 0\n\n===== Document 2 =====\nTitle: T1\ntext 1"
    )


def test_search_tool_limits_and_errors() -> None:
    fixed = _Fixed(HITS)
    search = search_tool(fixed, max_k=4, max_chars=3)
    assert search("q", 100).count("=====") == 8 and fixed.calls[-1] == ("q", 4)
    assert "tex ..." in search("q", 1)
    with pytest.raises(ConfigError, match="^query:"):
        search("")
    with pytest.raises(ConfigError, match="^k:"):
        search("q", 0)
    assert format_hits([]) == "No documents found."


def test_exports_are_sorted_and_resolve() -> None:
    assert retrieval.__all__ == sorted(retrieval.__all__)
    for name in retrieval.__all__:
        assert getattr(retrieval, name) is not None


@needs_shared
def test_cli_build_search_info_and_errors(tmp_path: Path, small_corpus: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ix"
    r = runner.invoke(app, ["build", str(small_corpus), "--out", str(out), "--backend", "bm25", "-q"])
    assert r.exit_code == 0, r.output
    assert "documents, bm25" in r.output
    r = runner.invoke(app, ["search", str(out), "Tinted Windows band", "-k", "2"])
    assert r.exit_code == 0 and r.output.startswith("Retrieved documents:") and "Tinted Windows" in r.output
    r = runner.invoke(app, ["search", str(out), "Tinted Windows band", "--json"])
    assert [json.loads(line)["title"] for line in r.output.splitlines()][0].startswith("Tinted Windows")
    assert json.loads(runner.invoke(app, ["info", str(out)]).output)["backend"] == "bm25"
    for args, message in [
        (["search", str(out), ""], "error: query: must be a non-empty string"),
        (["search", str(out), "x", "-k", "0"], "error: k: must be an integer >= 1"),
        (["search", str(tmp_path), "x"], "error: "),
        (["build", str(small_corpus), "--out", str(out), "--backend", "bm25"], "error: out_dir:"),
        (["build", str(small_corpus), "--out", str(tmp_path / "y"), "--backend", "sparse"], "error: backend:"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 1, (args, r.output)
        assert r.output.strip().splitlines()[-1].startswith(message), r.output


@needs_shared
def test_cli_serve_answers_search_r1_requests(tmp_path: Path, small_corpus: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    out = tmp_path / "ix"
    assert CliRunner().invoke(app, ["build", str(small_corpus), "--out", str(out), "--backend", "bm25", "-q"]).exit_code == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "from tinyact.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "index", "serve", str(out), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/retrieve", json={"queries": ["Tinted Windows"], "topk": 2})
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        result = r.json()["result"]
        assert len(result[0]) == 2 and result[0][0]["contents"].startswith('"Tinted Windows')
    finally:
        proc.terminate()
        proc.wait(timeout=10)
