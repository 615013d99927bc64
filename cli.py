"""The `tinyact` command: models, chat, and the sub-commands of each room."""

from __future__ import annotations

import errno
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from tinyact.distill.cli import app as distill_app
from tinyact.eval.cli import app as eval_app
from tinyact.sandbox.cli import app as sandbox_app
from tinyact.tools.retrieval.cli import app as index_app

app = typer.Typer(
    name="tinyact",
    help="CodeAct agents for small language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="The offline model catalog.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")
app.add_typer(distill_app, name="distill")

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line to stderr; return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _progress_callback():
    """A rich progress bar for catalog downloads/assembly/conversion."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TimeRemainingColumn(), console=err, transient=True,
    )
    tasks: dict[str, int] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=max(total, 1))
        progress.update(tasks[phase], completed=done, total=max(total, 1))

    return progress, report


@models_app.command("list")
def models_list() -> None:
    """Name, role, size, and whether each catalog model is prepared."""
    from tinyact.serve import catalog

    table = Table("name", "role", "download", "prepared", "where")
    for entry in catalog.CATALOG.values():
        ready = catalog.is_prepared(entry.name)
        size = catalog.entry_size_on_disk(entry.name)
        where = str(catalog.tinyact_home() / "models" / entry.name) if ready else "-"
        prepared = f"yes ({size / 1e6:.0f} MB)" if ready and size else ("yes" if ready else "no")
        table.add_row(entry.name, entry.role, f"{entry.approx_mb} MB", prepared, where)
    console.print(table)


@models_app.command("prepare")
def models_prepare(
    names: Annotated[list[str], typer.Argument(help="Catalog names; see `tinyact models list`.")],
    force: Annotated[bool, typer.Option(help="Prepare again even if already prepared.")] = False,
) -> None:
    """Download, verify (sha256) and convert catalog models into the cache."""
    from tinyact.errors import TinyactError
    from tinyact.serve import catalog

    for name in names:  # validate every name before any download starts
        if name not in catalog.CATALOG:
            raise fail(f"unknown model {name!r}; known: {', '.join(sorted(catalog.CATALOG))}")
    for name in names:
        if catalog.is_prepared(name) and not force:
            console.print(f"{name}: already prepared at {catalog.tinyact_home() / 'models' / name}")
            continue
        progress, report = _progress_callback()
        try:
            with progress:
                path = catalog.prepare(name, force=force, progress=report)
        except TinyactError as e:
            raise fail(str(e)) from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise fail(f"disk full while preparing {name}; nothing was left behind") from None
            raise fail(f"preparing {name} failed: {e}") from None
        except KeyboardInterrupt:
            raise fail(f"interrupted; {name} was not prepared (nothing half-written remains)", 130) from None
        console.print(f"{name}: prepared at {path}")


@models_app.command("path")
def models_path(name: str) -> None:
    """Print the folder of a prepared catalog model."""
    from tinyact.errors import TinyactError
    from tinyact.serve import catalog

    try:
        path = catalog.model_path(name, prepare_missing=False)
    except TinyactError as e:
        raise fail(str(e)) from None
    print(path)


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[Optional[str], typer.Option(help="Catalog name or model folder.")] = None,
    n: Annotated[int, typer.Option(help="Completions to sample.", min=1)] = 1,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    system: Annotated[Optional[str], typer.Option(help="System prompt.")] = None,
    engine: Annotated[str, typer.Option(help="transformers | vllm | openai")] = "transformers",
) -> None:
    """One-shot chat with a model; prints the completions."""
    from tinyact.errors import TinyactError
    from tinyact.serve.catalog import default_model
    from tinyact.serve.engines import load_engine
    from tinyact.types import Message, SamplingParams

    if n > 1 and temperature == 0:
        temperature = 0.7  # n identical greedy samples would be pointless
    try:
        eng = load_engine(model or default_model(), engine=engine)
        conv = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=prompt)]
        (completions,) = eng.generate([conv], n=n, sampling=SamplingParams(temperature=temperature, max_tokens=max_tokens))
    except TinyactError as e:
        raise fail(str(e)) from None
    for i, c in enumerate(completions):
        if n > 1:
            console.rule(f"completion {i + 1}/{n}")
        console.print(c.text, markup=False, highlight=False)
        err.print(f"[dim]({c.prompt_tokens} prompt + {c.completion_tokens} completion tokens, {c.finish_reason})[/]")


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    model: Annotated[Optional[str], typer.Option(help="Catalog name or model folder.")] = None,
    engine: Annotated[str, typer.Option(help="transformers | vllm | openai")] = "transformers",
    max_steps: Annotated[int, typer.Option(min=1)] = 5,
    samples: Annotated[int, typer.Option(help="k candidate actions per step (self-consistency).", min=1)] = 1,
    temperature: Annotated[Optional[float], typer.Option(min=0.0)] = None,
    prompt: Annotated[str, typer.Option(help="full | short")] = "full",
    index: Annotated[Optional[str], typer.Option(help="Retrieval index folder or http URL: adds search().")] = None,
    show_steps: Annotated[bool, typer.Option(help="Show each step as it happens.")] = True,
    save: Annotated[Optional[str], typer.Option(help="Append the trajectory to this JSONL file.")] = None,
    approve: Annotated[bool, typer.Option(help="Ask before running each code action.")] = False,
    sandbox: Annotated[str, typer.Option(help="auto | process | docker")] = "auto",
) -> None:
    """Run the CodeAct agent on a task; shows each step, then the answer."""
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    from tinyact.agents import Agent, AgentResult
    from tinyact.agents.trajectory import append_jsonl
    from tinyact.errors import TinyactError
    from tinyact.serve.catalog import default_model

    tools = []
    if index:
        try:
            from tinyact.tools.retrieval import RemoteRetriever, open_index, search_tool

            retriever = RemoteRetriever(index) if index.startswith(("http://", "https://")) else open_index(index)
            tools.append(search_tool(retriever))
        except TinyactError as e:
            raise fail(str(e)) from None

    def ask(request: dict) -> object:
        console.print(Panel(Syntax(request["code"], "python"), title=f"step {request['step']}: run this code?"))
        answer = typer.prompt("approve [y] / reject [n] / edit [e]", default="y")
        if answer.lower().startswith("e"):
            return {"action": "edit", "code": typer.edit(request["code"]) or request["code"]}
        return "approve" if answer.lower().startswith("y") else "reject"

    try:
        agent = Agent(
            model or default_model(), tools=tools, sandbox=sandbox, engine=engine, max_steps=max_steps,
            samples=samples, temperature=temperature, prompt=prompt, approve_code=approve,
        )
        result = None
        with agent:
            for item in agent.stream(task, approve=ask if approve else None):
                if isinstance(item, AgentResult):
                    result = item
                elif show_steps:
                    body = f"[bold]Thought:[/] {item.action.thought}" if item.action.thought else ""
                    console.print(Panel(body or "(no thought)", title=f"step {item.index}", title_align="left"))
                    if item.action.code:
                        console.print(Syntax(item.action.code, "python", line_numbers=False))
                    style = "red" if item.error else "green"
                    console.print(
                        Panel(Text(item.observation), title="observation", border_style=style, title_align="left")
                    )
    except TinyactError as e:
        raise fail(str(e)) from None
    assert result is not None
    if save:
        append_jsonl(save, [result.trajectory])
    t = result.trajectory
    err.print(f"[dim]{t.end_reason} after {len(t.steps)} step(s), {t.usage.total_tokens} tokens, {t.seconds:.1f}s[/]")
    console.print(f"[bold]Answer:[/] {result.answer}")


@app.command()
def serve(
    model: Annotated[Optional[str], typer.Option(help="Catalog name or model folder (with --engine-url: the served name).")] = None,
    engine: Annotated[str, typer.Option(help="transformers | vllm (ignored with --engine-url)")] = "transformers",
    engine_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible model server, e.g. http://vllm:8000/v1.")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind; without API keys only loopback clients are served.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    index: Annotated[Optional[str], typer.Option(help="Retrieval index folder or http URL: adds the search tool.")] = None,
    db: Annotated[Optional[str], typer.Option(help="SQLite file for runs and checkpoints (default: $TINYACT_HOME/api.sqlite).")] = None,
    api_keys_file: Annotated[Optional[str], typer.Option(help="Accepted bearer keys, one a line (also $TINYACT_API_KEYS, comma-separated).")] = None,
    on_restart: Annotated[str, typer.Option(help="Runs left unfinished by a previous process: interrupt | resume.")] = "interrupt",
    max_active_per_key: Annotated[int, typer.Option(min=1, help="Runs of one key executing at once.")] = 4,
    max_queued_per_key: Annotated[int, typer.Option(min=0, help="Runs of one key waiting; beyond it 429.")] = 16,
    max_steps: Annotated[int, typer.Option(min=1, help="Default steps per run.")] = 5,
    max_steps_limit: Annotated[int, typer.Option(min=1, help="Most steps a request may ask for.")] = 20,
    max_samples: Annotated[int, typer.Option(min=1, help="Most samples (k) a request may ask for.")] = 8,
    run_timeout: Annotated[float, typer.Option(min=1, help="Wall-clock seconds per run.")] = 300.0,
    sandbox: Annotated[str, typer.Option(help="auto | process | docker")] = "auto",
) -> None:
    """Serve the agent over HTTP: /v1/runs (SSE streaming), /v1/chat/completions, /metrics."""
    import uvicorn

    from tinyact.errors import TinyactError
    from tinyact.serve.api import RunService, ServerConfig, create_app, read_api_keys
    from tinyact.serve.catalog import default_model, tinyact_home
    from tinyact.serve.engines import load_engine

    try:
        tools = []
        if index:
            from tinyact.tools.retrieval import RemoteRetriever, open_index, search_tool

            retriever = RemoteRetriever(index) if index.startswith(("http://", "https://")) else open_index(index)
            tools.append(search_tool(retriever))
        if db is None:
            (tinyact_home()).mkdir(parents=True, exist_ok=True)
            db = str(tinyact_home() / "api.sqlite")
        config = ServerConfig(
            db=db, api_keys=read_api_keys(api_keys_file), on_restart=on_restart,  # type: ignore[arg-type]
            max_active_per_key=max_active_per_key, max_queued_per_key=max_queued_per_key,
            default_max_steps=max_steps, max_steps_limit=max_steps_limit, max_samples=max_samples,
            run_timeout=run_timeout, sandbox=sandbox, engine_parallel=8 if engine_url else 1,
        )
    except TinyactError as e:
        raise fail(str(e)) from None
    if engine_url:  # the served name from --model, else the server's first model
        name = model
        loader = lambda: load_engine(model or engine_url, engine="openai", base_url=engine_url)  # noqa: E731
    else:
        name = model or default_model()
        loader = lambda: load_engine(name, engine=engine)  # noqa: E731
    if not config.api_keys and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] no API key configured: binding {host} but serving loopback clients only")
    service = RunService(loader, tools=tools, config=config, model_name=name)
    uvicorn.run(create_app(service), host=host, port=port, timeout_graceful_shutdown=5, log_level="info")


@app.command("serve-model")
def serve_model(
    name: Annotated[str, typer.Argument(help="Catalog name or model folder.")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    lora: Annotated[Optional[list[str]], typer.Option(help="NAME=FOLDER: serve a LoRA adapter as model NAME.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to be ready.")] = 900.0,
) -> None:
    """Serve a model with vLLM's OpenAI-compatible server (CPU or GPU) until Ctrl-C."""
    import signal

    from tinyact.errors import TinyactError
    from tinyact.serve.model_server import start_model_server

    adapters = {}
    for item in lora or []:
        adapter, sep, folder = item.partition("=")
        if not (sep and adapter and folder):
            raise fail(f"--lora takes NAME=FOLDER, got {item!r}")
        adapters[adapter] = folder
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # A background job of a non-interactive shell inherits SIGINT ignored; the
        # server (started next, inheriting it) and this process must still stop on it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server = start_model_server(name, port=port, host=host, lora_modules=adapters)
    except (TinyactError, ImportError) as e:
        raise fail(str(e)) from None

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)  # `kill` stops the server too, not only Ctrl-C
    try:
        err.print(f"[dim]starting vLLM for {name} (pid {server.process.pid}); waiting until it is ready...[/]")
        url = server.wait_ready(timeout)
        console.print(
            f"ready: {url}  (model {name!r}; use --engine openai with TINYACT_ENGINE_URL={url})",
            soft_wrap=True, highlight=False,
        )
        code = server.process.wait()
    except TinyactError as e:
        server.stop()
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        err.print("stopping the server")
        server.stop()
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        raise fail(f"the vLLM server exited with code {code}", code)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
