"""``tinyact models ...`` (the catalog), ``tinyact chat`` and ``tinyact serve-model``: the models room's commands."""

from __future__ import annotations

import errno
from typing import Annotated, Optional

import typer

from tinyact.console import console, err, fail
from tinyact.models.engines import ENGINE_HELP

app = typer.Typer(help="The offline model catalog.", no_args_is_help=True)


def _catalog_progress():
    """The catalog's download/assembly/conversion phases, one bar each."""
    from tinyact.console import progress_bar

    progress = progress_bar(transient=True)
    tasks: dict[str, int] = {}

    def report(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = progress.add_task(phase, total=max(total, 1))
        progress.update(tasks[phase], completed=done, total=max(total, 1))

    return progress, report


@app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON records instead of a table.")] = False,
) -> None:
    """Name, role, size, and whether each catalog model is prepared (a table on a
    terminal, tab-separated lines when piped, or --json)."""
    from tinyact.console import print_records
    from tinyact.models import catalog

    records = []
    for entry in catalog.CATALOG.values():
        ready = catalog.is_prepared(entry.name)
        size = catalog.entry_size_on_disk(entry.name) if ready else None
        gguf = None if entry.kind != "causal-lm" else catalog.is_gguf_prepared(entry.name)
        records.append({
            "name": entry.name, "role": entry.role, "download_mb": entry.approx_mb, "prepared": ready,
            "size_mb": round(size / 1e6) if size else None, "gguf_prepared": gguf,
            "path": str(catalog.tinyact_home() / "models" / entry.name) if ready else None,
        })
    print_records(records, as_json=as_json)


@app.command("prepare")
def models_prepare(
    names: Annotated[list[str], typer.Argument(help="Catalog names; see `tinyact models list`.")],
    force: Annotated[bool, typer.Option(help="Prepare again even if already prepared.")] = False,
    engine: Annotated[str, typer.Option(help="For which engine: auto | transformers | vllm | llamacpp "
                                        "(llamacpp keeps the verified GGUF, no fp32 conversion).")] = "auto",
) -> None:
    """Download, verify (sha256) and convert catalog models into the cache."""
    from tinyact.errors import TinyactError
    from tinyact.models import catalog
    from tinyact.models.engines import ENGINES, pick_engine

    if engine != "auto" and engine not in ENGINES:
        raise fail(f"--engine must be auto or one of {', '.join(ENGINES)}, got {engine!r}")
    for name in names:  # validate every name before any download starts
        if name not in catalog.CATALOG:
            raise fail(f"unknown model {name!r}; known: {', '.join(sorted(catalog.CATALOG))}")
    for name in names:
        gguf = catalog.CATALOG[name].kind == "causal-lm" and (engine if engine != "auto" else pick_engine(name)) == "llamacpp"
        ready = catalog.is_gguf_prepared(name) if gguf else catalog.is_prepared(name)
        if ready and not force:
            where = catalog.gguf_path(name) if gguf else catalog.tinyact_home() / "models" / name
            console.print(f"{name}: already prepared at {where}")
            continue
        progress, report = _catalog_progress()
        try:
            with progress:
                prepare = catalog.prepare_gguf if gguf else catalog.prepare
                path = prepare(name, force=force, progress=report)
        except TinyactError as e:
            raise fail(str(e)) from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise fail(f"disk full while preparing {name}; nothing was left behind") from None
            raise fail(f"preparing {name} failed: {e}") from None
        except KeyboardInterrupt:
            raise fail(f"interrupted; {name} was not prepared (nothing half-written remains)", 130) from None
        console.print(f"{name}: prepared at {path}")


@app.command("path")
def models_path(name: str) -> None:
    """Print the folder of a prepared catalog model."""
    from tinyact.errors import TinyactError
    from tinyact.models import catalog

    try:
        path = catalog.model_path(name, prepare_missing=False)
    except TinyactError as e:
        raise fail(str(e)) from None
    print(path)


@app.command("export-gguf")
def models_export_gguf(
    folder: Annotated[str, typer.Argument(help="A Hugging Face model folder, e.g. a merged student (`tinyact distill export`).")],
    out: Annotated[str, typer.Option(help="The GGUF file to write.")],
    quant: Annotated[str, typer.Option(help="f16 | q8_0 | q6_k | q5_k_m | q4_k_m | q4_1 | q4_0 (a small model may lose a fine-tune below q8_0)")] = "q8_0",
) -> None:
    """Export a model folder to GGUF for the llama.cpp engine (llama.cpp's converter, then its quantizer)."""
    from tinyact.errors import TinyactError
    from tinyact.models.gguf_export import export_gguf

    err.print("[dim]converting with llama.cpp's convert_hf_to_gguf.py (fetched once from the llama-cpp-python sdist)...[/]")
    try:
        path = export_gguf(folder, out, quant)
    except (TinyactError, ImportError) as e:
        raise fail(str(e)) from None
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB, {quant}); run it with --engine llamacpp --model {path}")


def chat(
    prompt: Annotated[str, typer.Argument(help="The user message.")],
    model: Annotated[Optional[str], typer.Option(help="Catalog name or model folder.")] = None,
    n: Annotated[int, typer.Option(help="Completions to sample.", min=1)] = 1,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    max_tokens: Annotated[int, typer.Option(min=1)] = 256,
    system: Annotated[Optional[str], typer.Option(help="System prompt.")] = None,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
) -> None:
    """One-shot chat with a model; prints the completions."""
    from tinyact.errors import TinyactError
    from tinyact.models.catalog import default_model
    from tinyact.models.engines import load_engine
    from tinyact.schema import Message, SamplingParams

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


def serve_model(
    name: Annotated[str, typer.Argument(help="Catalog name or model folder.")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    lora: Annotated[Optional[list[str]], typer.Option(help="NAME=FOLDER: serve a LoRA adapter as model NAME.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to be ready.")] = 900.0,
    engine: Annotated[str, typer.Option(help="vllm (CPU or GPU) | llamacpp (llama-cpp-python's server on the GGUF, CPU)")] = "vllm",
) -> None:
    """Serve a model with an OpenAI-compatible server (vLLM, or llama.cpp) until Ctrl-C."""
    import signal

    from tinyact.errors import TinyactError
    from tinyact.models.server import start_model_server

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
        server = start_model_server(name, port=port, host=host, lora_modules=adapters, engine=engine)
    except (TinyactError, ImportError) as e:
        raise fail(str(e)) from None

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)  # `kill` stops the server too, not only Ctrl-C
    try:
        err.print(f"[dim]starting {server.kind} for {name} (pid {server.process.pid}); waiting until it is ready...[/]")
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
        raise fail(f"the {server.kind} server exited with code {code}", code)
