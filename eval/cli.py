"""The ``tinyact eval`` commands: run a benchmark, write a report, list benchmarks, export a corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from tinyact.console import fail
from tinyact.models.engines import ENGINE_HELP
from tinyact.errors import ConfigError, TinyactError

app = typer.Typer(
    name="eval",
    help="Evaluate agents and CoT baselines on the paper's benchmarks; compare runs.",
    no_args_is_help=True,
)


def _fail(message: str) -> NoReturn:
    raise fail(message, 2)


def _make_agent_solver(
    *, benchmark: Any, model: str, engine: str, samples: int, sampling: Any, temperature: float | None,
    max_steps: int,
    prompt: str | None, index: Path | None, out: Path | None = None, engine_kwargs: dict[str, Any] | None = None,
    parallel: int = 1, repeat_notes: bool = True,
) -> Any:
    """The agent method's SolveBatch: the CodeAct agent, with search() when an index is given."""
    from tinyact.agents import Agent
    from tinyact.eval.agent_solver import AgentSolver
    from tinyact.eval.runner import TRAJECTORIES

    from tinyact.tools.retrieval.cli import search_tools

    tools = search_tools(None if index is None else str(index))
    llm: Any = model
    if parallel > 1:  # questions run side by side; their model calls merge into batched engine calls
        from tinyact.models.engines import load_engine, parallel_kwargs
        from tinyact.models.engines.batching import BatchingEngine

        inner = load_engine(model, engine, **parallel_kwargs(engine, parallel, engine_kwargs))
        llm = BatchingEngine(inner, max_batch=parallel, window_ms=50)
        llm.model_name = model
    agent = Agent(
        llm, tools=tools, engine=engine, samples=samples, temperature=temperature,
        max_tokens=sampling.max_tokens, seed=sampling.seed,
        max_steps=max_steps, prompt=prompt or "full", engine_kwargs=engine_kwargs, repeat_notes=repeat_notes,
    )
    trajectories = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        trajectories = out / TRAJECTORIES
    return AgentSolver(agent, parallel=parallel, trajectories=trajectories)


def _benchmark(name: str, kind: str | None, split: str | None, data_dir: Path | None) -> Any:
    from tinyact.eval.datasets import BENCHMARKS, load_benchmark, load_jsonl_benchmark

    if name not in BENCHMARKS and (name.endswith(".jsonl") or Path(name).exists()):
        if kind is None:
            raise ConfigError("--kind qa|math is needed with a JSONL --benchmark (how to grade its answers)")
        if split is not None:
            raise ConfigError("--split does not apply to a JSONL --benchmark")
        return load_jsonl_benchmark(name, kind)
    bench = load_benchmark(name, split, data_dir=data_dir)
    if kind is not None and kind != bench.kind:
        raise ConfigError(f"--kind {kind} does not match benchmark {name!r}, which is {bench.kind}")
    return bench


def _make_cot_solver(*, model: str, engine: str, kind: Any, samples: int, sampling: Any,
                     engine_kwargs: dict[str, Any], index: str | None = None, rag_k: int = 5,
                     retriever: Any = None) -> Any:
    """The CoT method's SolveBatch (module-level: a Ray worker builds it from a partial); with ``index``,
    QA questions are asked with their top ``rag_k`` passages (``retriever``: the index already open; else it
    opens on the first batch)."""
    from tinyact.eval.cot import CoTSolver
    from tinyact.models.engines import load_engine

    return CoTSolver(load_engine(model, engine, **engine_kwargs), kind, samples=samples, sampling=sampling,
                     model=model, retriever=retriever if retriever is not None else index, k=rag_k, index=index)


def _dry_config(method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a solver records in config.json, from one built on an empty ReplayEngine (no model
    loaded here): the driver of a ``--ray`` run writes the same config as a local run."""
    from tinyact.models.engines import ReplayEngine

    if method == "cot":
        from tinyact.eval.cot import CoTSolver

        return CoTSolver(ReplayEngine([]), kwargs["kind"], samples=kwargs["samples"], sampling=kwargs["sampling"],
                         model=kwargs["model"], retriever=kwargs["index"], k=kwargs["rag_k"]).config
    from tinyact.agents import Agent
    from tinyact.eval.agent_solver import AgentSolver
    from tinyact.tools.retrieval.cli import search_tools

    index = kwargs["index"]
    agent = Agent(ReplayEngine([]), tools=search_tools(None if index is None else str(index)),
                  samples=kwargs["samples"], temperature=kwargs["temperature"], max_tokens=kwargs["sampling"].max_tokens,
                  seed=kwargs["sampling"].seed, max_steps=kwargs["max_steps"], prompt=kwargs["prompt"] or "full",
                  repeat_notes=kwargs["repeat_notes"])
    agent.model_name = kwargs["model"]
    return AgentSolver(agent).config


@app.command("run")
def run(
    benchmark: Annotated[str, typer.Option(
        help="Benchmark name (see `tinyact eval list`), or your own JSONL file (question, answer, id?) with --kind.")],
    out: Annotated[Path, typer.Option(help="Run folder; rerun the same command to resume.")],
    split: Annotated[Optional[str], typer.Option(help="Split (default: the benchmark's test split).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="qa | math: how a JSONL --benchmark is graded.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N questions.")] = None,
    model: Annotated[str, typer.Option(help="Model name, folder or hub id.")] = "qwen2.5-coder-0.5b",
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
    dtype: Annotated[
        Optional[str], typer.Option(help="Weights dtype for transformers/vllm, e.g. bfloat16 (default: float32 on CPU).")
    ] = None,
    method: Annotated[str, typer.Option(help="cot or agent.")] = "cot",
    samples: Annotated[int, typer.Option("--samples", "-k", help="k samples per question / step.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Questions per engine call.")] = 8,
    parallel: Annotated[
        int, typer.Option(help="Agent: questions run side by side, their model calls batched (at most --batch-size).")
    ] = 1,
    max_tokens: Annotated[int, typer.Option(help="New tokens per completion.")] = 1024,
    temperature: Annotated[
        Optional[float],
        typer.Option(help="Sampling temperature (default 0 for k=1; for k>1 0.7 with cot, 0.4 and top_p 0.8 with agent)."),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Sampling seed.")] = None,
    max_steps: Annotated[int, typer.Option(help="Agent: step budget.")] = 5,
    prompt: Annotated[Optional[str], typer.Option(help="Agent: prompt name.")] = None,
    index: Annotated[Optional[Path], typer.Option(
        help="Retrieval index folder. Agent: gives it search(); cot: each QA question comes with its top "
             "--rag-k passages (retrieved with the question).")] = None,
    rag_k: Annotated[int, typer.Option(min=1, help="CoT with --index: passages per question.")] = 5,
    repeat_notes: Annotated[bool, typer.Option(
        help="Agent: loop detection, a note on an action identical to an earlier step's (off: the ablation).")
    ] = True,
    judge_url: Annotated[
        Optional[str], typer.Option(help="Grade QA with an LLM judge at this OpenAI-compatible URL.")
    ] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="The judge's model name.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Shared data folder (default ../shared/data).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    ray: Annotated[
        Optional[str], typer.Option(help="Spread the batches over Ray workers: 'local' (start Ray here), 'auto' "
                                         "(RAY_ADDRESS / this machine's cluster) or a head's host:port.")
    ] = None,
    ray_workers: Annotated[Optional[int], typer.Option(min=1, help="Ray workers (default: the cluster's CPUs).")] = None,
) -> None:
    """Run one benchmark with one method into a resumable run folder."""
    import functools

    from tinyact.eval.runner import TRAJECTORIES, run_eval
    from tinyact.schema import SamplingParams

    try:
        if method not in ("cot", "agent"):
            raise ConfigError(f"--method must be cot or agent, got {method!r}")
        bench = _benchmark(benchmark, kind, split, data_dir)
        engine_kwargs = {"dtype": dtype} if dtype else {}
        if engine == "auto":  # recorded resolved, so that a resumed run keeps its engine
            from tinyact.models.engines import pick_engine

            engine = pick_engine(model, **engine_kwargs)
        temp = temperature if temperature is not None else (0.0 if samples == 1 else 0.7)
        sampling = SamplingParams(
            temperature=temp, top_p=1.0 if temp == 0 else 0.95, max_tokens=max_tokens, seed=seed
        )
        judge = None
        if judge_url:
            from tinyact.eval.judge import LLMJudge

            if not judge_model:
                raise ConfigError("--judge-url needs --judge-model")
            judge = LLMJudge(judge_url, judge_model)
        if method == "agent":
            kwargs: dict[str, Any] = dict(
                benchmark=None, model=model, engine=engine, samples=samples, sampling=sampling,
                temperature=temperature,  # None: the agent's own defaults (paper: 0.4 / top_p 0.8 for k>1)
                parallel=max(1, min(parallel, batch_size)),
                max_steps=max_steps, prompt=prompt, index=index, engine_kwargs=engine_kwargs,
                repeat_notes=repeat_notes,
            )
            factory = functools.partial(_make_agent_solver, **kwargs)
            extra: dict[str, object] = {"engine": engine, "index": str(index) if index else None}
        else:
            if index is not None and bench.kind != "qa":
                raise ConfigError(f"--index gives the cot method passages on QA benchmarks only; {bench.name} is "
                                  f"{bench.kind}")
            retriever = None
            if index is not None:  # fail here, not in the first batch, when it is no index
                from tinyact.tools.retrieval.cli import open_retriever

                retriever = open_retriever(str(index))
            kwargs = dict(model=model, engine=engine, kind=bench.kind, samples=samples, sampling=sampling,
                          engine_kwargs=engine_kwargs, index=str(index) if index else None, rag_k=rag_k)
            factory = functools.partial(_make_cot_solver, **kwargs)
            extra = {"engine": engine}
        if ray:
            from tinyact.eval.distributed import RaySolve, connect

            out.mkdir(parents=True, exist_ok=True)
            connect(ray)
            solver: Any = RaySolve(factory, address=ray, workers=ray_workers,
                                   trajectories=out / TRAJECTORIES if method == "agent" else None)
            config: dict[str, object] = {**_dry_config(method, kwargs), **extra}
        else:
            solver = factory(out=out) if method == "agent" else factory(retriever=retriever)
            config = {**solver.config, **extra}
        if dtype:
            config["dtype"] = dtype
        if bench.split == "file":
            config["benchmark_file"] = str(bench.path)
        summary = run_eval(
            bench, solver, out, limit=limit, batch_size=batch_size, method=method,  # type: ignore[arg-type]
            config=config, judge=judge, progress=progress,
        )
    except TinyactError as e:
        _fail(str(e))
        return
    typer.echo(
        f"{summary.benchmark}:{summary.split} {summary.method} k={summary.samples}: "
        f"accuracy {summary.accuracy:.3f} ({summary.metric}) on {summary.n} questions -> {out}"
    )


@app.command("report")
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders (or folders holding them).")],
    out: Annotated[Path, typer.Option(help="Where to write report.md and the plots.")] = Path("eval-report"),
) -> None:
    """Compare runs: a markdown table and PNG plots."""
    from tinyact.eval.report import make_report

    try:
        path = make_report(run_dirs, out)
    except TinyactError as e:
        _fail(str(e))
        return
    typer.echo(path.read_text(encoding="utf-8"))
    typer.echo(f"written: {path}")


@app.command("list")
def list_cmd(
    data_dir: Annotated[Optional[Path], typer.Option(help="Shared data folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON records (sizes per split; null: file missing).")] = False,
) -> None:
    """List the benchmarks, their splits and sizes."""
    import json

    from tinyact.eval.datasets import BENCHMARKS, load_benchmark

    records = []
    for name, spec in sorted(BENCHMARKS.items()):
        sizes: dict[str, int | None] = {}
        for split in spec.files:
            try:
                sizes[split] = len(load_benchmark(name, split, data_dir=data_dir).questions)
            except TinyactError:
                sizes[split] = None
        records.append({"name": name, "kind": spec.kind, "splits": sizes, "corpus": spec.has_corpus})
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    for r in records:
        sizes_text = " ".join(f"{k}={'missing' if v is None else v}" for k, v in r["splits"].items())
        typer.echo(f"{r['name']:22s} {r['kind']:5s} {sizes_text}{'  +corpus' if r['corpus'] else ''}")


@app.command("corpus")
def corpus(
    out: Annotated[Path, typer.Argument(help="JSONL file to write (wiki-18 format).")],
    benchmark: Annotated[str, typer.Option(help="A benchmark with a corpus.")] = "hotpotqa-distractor",
    data_dir: Annotated[Optional[Path], typer.Option(help="Shared data folder.")] = None,
) -> None:
    """Write a benchmark's corpus as wiki-18 JSONL, ready to index."""
    from tinyact.eval.datasets import load_benchmark

    try:
        n = load_benchmark(benchmark, data_dir=data_dir).write_corpus(out)
    except TinyactError as e:
        _fail(str(e))
        return
    typer.echo(f"{n} passages -> {out}")
