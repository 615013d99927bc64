"""`tinyact index ...` commands: build, search, serve, info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from tinyact.console import fail
from tinyact.errors import TinyactError

app = typer.Typer(help="Build, search and serve retrieval indexes.", no_args_is_help=True)


IndexOption = Annotated[
    Optional[str], typer.Option(help="Retrieval index folder or http URL: gives the agent search().")
]


def open_retriever(index: str) -> Any:
    """An ``--index`` value as a retriever: a ``RemoteRetriever`` for an http(s) URL, else the index folder.

    Raises:
        TinyactError: the folder is not an index (or the URL is malformed).
    """
    from tinyact.tools.retrieval import RemoteRetriever, open_index

    return RemoteRetriever(index) if index.startswith(("http://", "https://")) else open_index(index)


def search_tools(index: str | None) -> list[Any]:
    """The ``--index`` option of ``run``, ``serve`` and ``eval run``: ``[search tool]``, or ``[]`` without one.

    Raises:
        TinyactError: the folder is not an index (or the URL is malformed).
    """
    if not index:
        return []
    from tinyact.tools.retrieval import search_tool

    return [search_tool(open_retriever(index))]


def _fail(e: Exception) -> NoReturn:
    raise fail(str(e), 1)


@app.command()
def build(
    corpus: Annotated[list[Path], typer.Argument(help="Corpus JSONL file(s) or folder(s): wiki-18, HotpotQA or title/text.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to create.")],
    backend: Annotated[str, typer.Option(help="dense | bm25 | hybrid")] = "hybrid",
    model: Annotated[str, typer.Option(help="Catalog name or local sentence-transformers folder.")] = "minilm-l6",
    format: Annotated[str, typer.Option(help="auto | wiki18 | hotpotqa | jsonl")] = "auto",
    on_error: Annotated[str, typer.Option("--on-error", help="Broken corpus line: fail | skip")] = "fail",
    dense_kind: Annotated[str, typer.Option("--dense-kind", help="auto | flat | hnsw | ivf")] = "auto",
    faiss_index: Annotated[Path | None, typer.Option("--faiss-index", help="Adopt a prebuilt FAISS index of this corpus.")] = None,
    query_prefix: Annotated[str | None, typer.Option(help="Query prefix (e5: 'query: ').")] = None,
    passage_prefix: Annotated[str | None, typer.Option(help="Passage prefix (e5: 'passage: ').")] = None,
    batch_size: Annotated[int, typer.Option(help="Embedding batch size.")] = 64,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build an index folder from a corpus."""
    from tinyact.tools.retrieval.build import build_index

    try:
        index = build_index(
            corpus if len(corpus) > 1 else corpus[0], out, backend=backend, model=model, format=format,  # type: ignore[arg-type]
            on_error=on_error, faiss_index=faiss_index, overwrite=overwrite, dense_kind=dense_kind,
            query_prefix=query_prefix, passage_prefix=passage_prefix, batch_size=batch_size, progress=not quiet,
        )
    except (TinyactError, OSError) as e:
        _fail(e)
    m = index.manifest
    kind = f", {m['dense']['kind']}" if m.get("dense") else ""
    typer.echo(f"built {out}: {len(index)} documents, {m['backend']}{kind}, {m['build_seconds']:.1f}s")


@app.command()
def search(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    query: Annotated[str, typer.Argument(help="The query.")],
    k: Annotated[int, typer.Option("-k", "--k", help="How many passages.")] = 3,
    backend: Annotated[str | None, typer.Option(help="dense | bm25 | hybrid (default: the index's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON lines.")] = False,
) -> None:
    """Search an index folder and print the hits as the agent's tool shows them."""
    from tinyact.tools.retrieval.index import Index
    from tinyact.tools.retrieval.tool import format_hits

    try:
        hits = Index.load(index_dir).search(query, k, backend=backend)
    except (TinyactError, OSError) as e:
        _fail(e)
    if as_json:
        for h in hits:
            typer.echo(json.dumps({"id": h.id, "title": h.title, "text": h.text, "score": h.score}, ensure_ascii=False))
    else:
        typer.echo(format_hits(hits))


@app.command()
def serve(
    index_dir: Annotated[Path, typer.Argument(help="Index folder.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    topk: Annotated[int, typer.Option(help="Default topk when a request gives none.")] = 3,
) -> None:
    """Serve an index over HTTP with Search-R1's `POST /retrieve` API."""
    from tinyact.tools.retrieval.index import Index
    from tinyact.tools.retrieval.server import serve as run_server

    try:
        index = Index.load(index_dir)
        typer.echo(f"serving {index_dir} ({len(index)} documents, {index.backend}) on http://{host}:{port}/retrieve")
        run_server(index, host=host, port=port, default_topk=topk)
    except (TinyactError, OSError) as e:
        _fail(e)


@app.command()
def info(index_dir: Annotated[Path, typer.Argument(help="Index folder.")]) -> None:
    """Print an index's manifest."""
    from tinyact.tools.retrieval.index import Index

    try:
        manifest: dict[str, Any] = Index.load(index_dir).manifest
    except (TinyactError, OSError) as e:
        _fail(e)
    typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
