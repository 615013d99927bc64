"""``tinyact serve``: the agent API server."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tinyact.console import err, fail
from tinyact.models.engines import ENGINE_HELP
from tinyact.tools.retrieval.cli import IndexOption, search_tools


def serve(
    model: Annotated[Optional[str], typer.Option(help="Catalog name or model folder (with --engine-url: the served name).")] = None,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP + "; ignored with --engine-url")] = "auto",
    engine_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible model server, e.g. http://vllm:8000/v1; several comma-separated: calls spread over them, a failed one retried on another.")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind; without API keys only loopback clients are served.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    index: IndexOption = None,
    db: Annotated[Optional[str], typer.Option(help="Runs and checkpoints: a SQLite file (default: $TINYACT_HOME/api.sqlite) or a postgresql:// URL that replicas share.")] = None,
    replica_id: Annotated[Optional[str], typer.Option(help="This replica's name in the database (default: host:port); keep it across restarts.")] = None,
    lease_ttl: Annotated[float, typer.Option(min=1, help="Seconds before another replica takes over the runs of one that stopped answering.")] = 15.0,
    api_keys_file: Annotated[Optional[str], typer.Option(help="Accepted bearer keys, one a line (also $TINYACT_API_KEYS, comma-separated).")] = None,
    on_restart: Annotated[str, typer.Option(help="Runs left unfinished by a previous process: interrupt | resume.")] = "interrupt",
    max_active_per_key: Annotated[int, typer.Option(min=1, help="Runs of one key executing at once.")] = 4,
    max_queued_per_key: Annotated[int, typer.Option(min=0, help="Runs of one key waiting; beyond it 429.")] = 16,
    max_steps: Annotated[int, typer.Option(min=1, help="Default steps per run.")] = 5,
    max_steps_limit: Annotated[int, typer.Option(min=1, help="Most steps a request may ask for.")] = 20,
    max_samples: Annotated[int, typer.Option(min=1, help="Most samples (k) a request may ask for.")] = 8,
    run_timeout: Annotated[float, typer.Option(min=1, help="Wall-clock seconds per run.")] = 300.0,
    sandbox: Annotated[str, typer.Option(help="auto | process | docker")] = "auto",
    sandbox_pool: Annotated[int, typer.Option(min=0, help="Fresh sandboxes started ahead of the runs (0: none).")] = 4,
    sandbox_reuse: Annotated[bool, typer.Option(help="Opt-in: reuse a sandbox between runs of the same key after a reset (faster, less isolated: docs/deploy.md).")] = False,
) -> None:
    """Serve the agent over HTTP: /v1/runs (SSE streaming), /v1/chat/completions, /metrics."""
    import socket

    import uvicorn

    from tinyact.errors import TinyactError
    from tinyact.serve import RunService, ServerConfig, create_app, read_api_keys
    from tinyact.serve.store import check_database
    from tinyact.models.catalog import default_model, tinyact_home
    from tinyact.models.engines import load_engine, parallel_kwargs, pick_engine

    try:
        tools = search_tools(index)
        if db is None:
            (tinyact_home()).mkdir(parents=True, exist_ok=True)
            db = str(tinyact_home() / "api.sqlite")
        config = ServerConfig(
            db=db, replica_id=replica_id or f"{socket.gethostname()}:{port}", lease_ttl=lease_ttl, api_keys=read_api_keys(api_keys_file), on_restart=on_restart,  # type: ignore[arg-type]
            max_active_per_key=max_active_per_key, max_queued_per_key=max_queued_per_key,
            default_max_steps=max_steps, max_steps_limit=max_steps_limit, max_samples=max_samples,
            run_timeout=run_timeout, sandbox=sandbox, sandbox_pool=sandbox_pool, sandbox_reuse=sandbox_reuse,
            engine_parallel=8 if engine_url else 1,
        )
        check_database(config.db)
    except TinyactError as e:
        raise fail(str(e)) from None
    if engine_url:  # the served name from --model, else the server's first model
        name = model
        loader = lambda: load_engine(model or engine_url, engine="openai", base_url=engine_url)  # noqa: E731
    else:
        name = model or default_model()
        resolved = pick_engine(name) if engine == "auto" else engine
        # concurrent runs' calls are batched: llama.cpp keeps a cache slot per batched conversation
        loader = lambda: load_engine(name, engine=resolved, **parallel_kwargs(resolved, min(config.batch_max, 8)))  # noqa: E731
    if not config.api_keys and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] no API key configured: binding {host} but serving loopback clients only")
    service = RunService(loader, tools=tools, config=config, model_name=name)
    uvicorn.run(create_app(service), host=host, port=port, timeout_graceful_shutdown=5, log_level="info")


def view(
    runs: Annotated[str, typer.Argument(help="A trajectories JSONL file (tinyact run --save, eval, distill).")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")] = 8765,
) -> None:
    """Look at saved runs in the browser: steps, code, observations, k candidates and their vote."""
    import socket
    from pathlib import Path

    import uvicorn

    from tinyact.serve.viewer import file_app

    path = Path(runs)
    if not path.is_file():
        raise fail(f"no such trajectories file: {runs}")
    try:
        from tinyact.agents.trajectory import read_jsonl

        count = sum(1 for _ in read_jsonl(path))
    except ValueError as e:
        raise fail(f"{runs} is not a trajectories JSONL file: {str(e).splitlines()[0]}") from None
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        raise fail(f"cannot listen on 127.0.0.1:{port}: {e.strerror}; pick another --port") from None
    err.print(f"{count} run(s) from {runs}: open http://127.0.0.1:{sock.getsockname()[1]}/  (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(file_app(path), log_level="warning"))
    server.run(sockets=[sock])
