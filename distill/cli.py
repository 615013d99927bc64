"""`tinyact distill ...`: the pipeline's stages, one command each, and `all` from one config file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from tinyact.console import console, err, fail

app = typer.Typer(help="Distill a teacher agent into a small student (prefixes, collect, filter, sft-data, "
                       "train, export, eval, all; cot: the CoT-distillation baseline's data).", no_args_is_help=True)

ConfigArg = Annotated[Path, typer.Argument(help="Distillation config (YAML), e.g. examples/distill-cpu.yaml.")]


def _pipeline(config: Path, workdir: Optional[str] = None) -> object:
    from tinyact.distill.config import load_config
    from tinyact.distill.pipeline import Pipeline
    from tinyact.errors import ConfigError

    try:
        cfg = load_config(config)
    except (ConfigError, OSError) as e:
        raise fail(str(e), 2) from None
    if workdir:
        cfg.workdir = workdir
    return Pipeline(cfg)


def _show(data: object) -> None:
    console.print_json(json.dumps(data, default=str))


WorkdirOpt = Annotated[Optional[str], typer.Option("--workdir", help="Override the config's workdir.")]


@app.command()
def prefixes(config: ConfigArg, workdir: WorkdirOpt = None) -> None:
    """Teacher CoT answers -> first-thought prefixes (prefixes.jsonl; resumable)."""
    p = _pipeline(config, workdir)
    _show({"prefixes": len(p.prefixes()), "file": str(p.paths["prefixes"])})  # type: ignore[attr-defined]


@app.command()
def cot(config: ConfigArg, workdir: WorkdirOpt = None) -> None:
    """Teacher CoT answers to every training question, graded (cot.jsonl; resumable; reuses prefixes.jsonl)."""
    from tinyact.errors import TinyactError

    p = _pipeline(config, workdir)
    try:
        _show(p.cot() | {"file": str(p.paths["cot"])})  # type: ignore[attr-defined]
    except TinyactError as e:
        raise fail(str(e), 2) from None


@app.command()
def collect(
    config: ConfigArg,
    workdir: WorkdirOpt = None,
    ray: Annotated[Optional[str], typer.Option(help="Spread the questions over Ray workers: 'local' (start Ray "
                                                    "here), 'auto' or a head's host:port.")] = None,
    ray_workers: Annotated[Optional[int], typer.Option(min=1, help="Ray workers (default: the cluster's CPUs).")] = None,
) -> None:
    """Run the teacher agent on every training question (trajectories.jsonl; resumable)."""
    from tinyact.errors import TinyactError

    try:
        _show(_pipeline(config, workdir).collect(ray=ray, ray_workers=ray_workers))  # type: ignore[attr-defined]
    except TinyactError as e:
        raise fail(str(e), 2) from None


@app.command("filter")
def filter_(config: ConfigArg, workdir: WorkdirOpt = None) -> None:
    """Grade and keep correct, parseable, finished runs (kept.jsonl, filter-report.json)."""
    _show(_pipeline(config, workdir).filter())  # type: ignore[attr-defined]


@app.command("sft-data")
def sft_data(
    config: ConfigArg,
    workdir: WorkdirOpt = None,
    import_logs: Annotated[Optional[list[str]], typer.Option("--import", help="Also import smolagents-style logs "
                                                                              "(the paper's released format).")] = None,
    data: Annotated[str, typer.Option(help="agent: kept trajectories -> sft.jsonl; cot: correct CoT answers "
                                           "(distill cot) -> sft-cot.jsonl.")] = "agent",
) -> None:
    """Kept trajectories (and imported logs), or correct CoT answers, -> TRL conversational JSONL."""
    from tinyact.errors import TinyactError

    p = _pipeline(config, workdir)
    try:
        n = p.sft_data(import_logs or [], data=data)  # type: ignore[attr-defined]
    except TinyactError as e:
        raise fail(str(e), 2) from None
    _show({"examples": n, "file": str(p.paths["sft_cot" if data == "cot" else "sft"])})  # type: ignore[attr-defined]


StudentOpt = Annotated[Optional[str], typer.Option(
    "--student", help="Train/export/evaluate this student (catalog name) into students/<student>-<data>/ "
                      "(default: the config's student, in the work folder itself).")]
DataOpt = Annotated[Optional[str], typer.Option(
    "--data", help="agent (sft.jsonl) or cot (sft-cot.jsonl); with it, outputs go to students/<student>-<data>/.")]


def _stage(config: Path, workdir: Optional[str], fn: str, **kwargs: object) -> object:
    """Run a pipeline stage; a TinyactError (missing data, bad option) is one line and exit 2."""
    from tinyact.errors import TinyactError

    p = _pipeline(config, workdir)
    p.config_file = str(config)  # type: ignore[attr-defined]
    try:
        return getattr(p, fn)(**kwargs)
    except TinyactError as e:
        raise fail(str(e), 2) from None


@app.command()
def train(config: ConfigArg, workdir: WorkdirOpt = None, student: StudentOpt = None, data: DataOpt = None) -> None:
    """Fine-tune the student with TRL (LoRA or full, assistant-only loss; resumes from checkpoints)."""
    r = _stage(config, workdir, "train", student=student, data=data)
    _show({k: v for k, v in r.items() if k != "losses"}  # type: ignore[attr-defined]
          | {"first_loss": r["losses"][:1], "last_loss": r["losses"][-1:]})  # type: ignore[index]


@app.command()
def export(config: ConfigArg, workdir: WorkdirOpt = None, student: StudentOpt = None, data: DataOpt = None,
           gguf: Annotated[Optional[str], typer.Option(
               help="Also write merged/model.gguf of this type (q4_k_m, q4_1, q8_0, f16, ...) for the llama.cpp "
                    "engine, and check how much of the fine-tune it keeps (merged/model.gguf.check.json).")] = None) -> None:
    """Merge the adapter into a model folder the transformers and vLLM engines load by path (and a GGUF)."""
    merged = Path(str(_stage(config, workdir, "export", student=student, data=data, gguf=gguf)))
    check = merged / "model.gguf.check.json"
    _show({"merged": str(merged)} | ({"gguf": str(merged / "model.gguf")} if gguf else {})
          | ({"fine_tune_kept": json.loads(check.read_text())} if gguf and check.is_file() else {}))


@app.command("eval")
def eval_(config: ConfigArg, workdir: WorkdirOpt = None,
          model: Annotated[Optional[str], typer.Option(help="Evaluate this model instead of the merged export.")] = None,
          student: StudentOpt = None, data: DataOpt = None) -> None:
    """The student on the config's held-out benchmarks (evaluation: k, temperature, top_p; resumable)."""
    _show(_stage(config, workdir, "evaluate", model=model, student=student, data=data))


@app.command("all")
def all_(config: ConfigArg, workdir: WorkdirOpt = None,
         force: Annotated[bool, typer.Option(help="Retrain and re-export even when outputs exist.")] = False) -> None:
    """The whole pipeline from one config file; every stage resumes or skips finished work."""
    _show(_pipeline(config, workdir).run_all(force=force))  # type: ignore[attr-defined]
