"""DistillConfig: the whole distillation pipeline (teacher, tasks, collection, training) in one validated object."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from tinyact.errors import ConfigError

__all__ = ["DistillConfig", "EvalBenchmark", "EvalConfig", "TaskSource", "TrainConfig", "load_config"]

Source = Literal["code_tasks", "benchmark", "jsonl"]


@dataclass
class TaskSource:
    """Where training (or held-out) questions come from."""

    source: Source = "code_tasks"
    """"code_tasks" (seeded code-needing tasks), "benchmark" (an eval loader), "jsonl" ({"id","question","answer"} lines)."""
    n: int | None = None
    """How many questions (code_tasks: how many to make; others: the first n)."""
    seed: int = 0
    """Seed of the code tasks (a different seed gives different, held-out tasks)."""
    name: str = ""
    """Benchmark name (``source="benchmark"``), e.g. "hotpotqa"."""
    split: str | None = None
    """Benchmark split, e.g. "train"."""
    path: str = ""
    """File of ``source="jsonl"``."""
    grader: Literal["code", "qa", "math"] = "code"
    """How answers of a ``jsonl`` source are graded (benchmarks bring their own)."""

    def __post_init__(self) -> None:
        if self.source not in ("code_tasks", "benchmark", "jsonl"):
            raise ConfigError(f"task source must be code_tasks, benchmark or jsonl, got {self.source!r}")
        if self.n is not None and self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")
        if self.source == "benchmark" and not self.name:
            raise ConfigError("a benchmark task source needs name= (e.g. hotpotqa)")
        if self.source == "jsonl" and not self.path:
            raise ConfigError("a jsonl task source needs path=")
        if self.source == "code_tasks" and self.n is None:
            self.n = 35


@dataclass
class TrainConfig:
    """Student fine-tuning settings; defaults are the paper's (LoRA r=64, alpha=128, lr 2e-4, 2 epochs, batch 8).

    Turned into TRL's ``SFTConfig`` by :meth:`sft_config`, which only overrides
    these defaults (anything else can be passed through ``extra``).
    """

    lora: bool = True
    """LoRA via peft (False: full fine-tuning)."""
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 2.0
    per_device_batch_size: int = 2
    gradient_accumulation_steps: int = 4
    """Effective batch = per_device_batch_size * gradient_accumulation_steps (* devices); paper: 8."""
    max_length: int = 4096
    """Tokens per conversation; longer ones are truncated (the end is cut)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    warmup_ratio: float = 0.03
    gradient_checkpointing: bool = True
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int = 2
    bf16: bool | None = None
    """None: bf16 on a CUDA GPU that supports it, float32 elsewhere."""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    """More ``SFTConfig`` fields, passed through as is."""

    def __post_init__(self) -> None:
        for name in ("lora_r", "lora_alpha", "per_device_batch_size", "gradient_accumulation_steps", "max_length",
                     "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.epochs <= 0 and self.max_steps < 1:
            raise ConfigError(f"epochs must be > 0 (or max_steps >= 1), got {self.epochs}")

    def sft_config(self, output_dir: str | os.PathLike[str]) -> Any:
        """TRL's ``SFTConfig`` with these values (labels come pre-built: assistant tokens only)."""
        import torch
        from trl import SFTConfig

        bf16 = self.bf16
        if bf16 is None:
            bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        kwargs: dict[str, Any] = dict(
            output_dir=str(output_dir),
            learning_rate=self.learning_rate,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_length=self.max_length,
            truncation_mode="keep_start",
            warmup_steps=self.warmup_ratio,  # transformers 5: a value < 1 is a ratio of the steps
            lr_scheduler_type="cosine",
            gradient_checkpointing=self.gradient_checkpointing,
            logging_steps=self.logging_steps,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            bf16=bf16,
            seed=self.seed,
            report_to="none",
            packing=False,
            dataloader_num_workers=0,
            disable_tqdm=True,
            # no GPU: say CPU, so that under `accelerate launch` (torchrun) the processes train
            # together over gloo instead of each alone (see examples/accelerate-cpu-ddp.yaml)
            use_cpu=not torch.cuda.is_available(),
        )
        kwargs.update(self.extra)
        return SFTConfig(**kwargs)


@dataclass
class EvalBenchmark:
    """One held-out benchmark of the student's evaluation."""

    name: str
    """A benchmark of ``tinyact eval list`` (e.g. "hotpotqa", "math500", "gsm-hard")."""
    split: str | None = None
    """Default: the benchmark's test split."""
    limit: int | None = None
    """Only the first ``limit`` questions (the same ones for every model)."""
    index: str | None = None
    """Retrieval index folder or URL: gives the student ``search()`` (QA benchmarks)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("an evaluation benchmark needs name= (e.g. math500)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")


@dataclass
class EvalConfig:
    """Held-out evaluation of the exported student (``tinyact distill eval``).

    Defaults are the paper's self-consistent action generation: k=8 candidate
    actions per step at temperature 0.4, top_p 0.8, at most 5 steps.
    """

    benchmarks: list[EvalBenchmark] = field(default_factory=list)
    """Nothing is evaluated when empty."""
    engine: Literal["transformers", "vllm", "llamacpp", "openai"] = "transformers"
    """llamacpp: the student exported to GGUF (``tinyact distill export CONFIG --gguf q8_0``)."""
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    samples: int = 8
    temperature: float = 0.4
    top_p: float = 0.8
    max_steps: int = 5
    max_tokens: int = 1024
    parallel: int = 8
    """Questions run side by side (their model calls batched)."""

    def __post_init__(self) -> None:
        self.benchmarks = [EvalBenchmark(**b) if isinstance(b, dict) else b for b in self.benchmarks]
        if self.engine not in ("transformers", "vllm", "llamacpp", "openai"):
            raise ConfigError(f"evaluation.engine must be transformers, vllm, llamacpp or openai, got {self.engine!r}")
        for name in ("samples", "max_steps", "max_tokens", "parallel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"evaluation.{name} must be >= 1, got {getattr(self, name)}")
        if self.samples > 1 and self.temperature <= 0:
            raise ConfigError("evaluation.samples > 1 needs temperature > 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"evaluation.top_p must be in (0, 1], got {self.top_p}")


@dataclass
class DistillConfig:
    """One distillation run: teacher, questions, collection, filtering, student training, export.

    Every stage writes into ``workdir`` and skips work already there, so the
    pipeline (``tinyact distill all CONFIG.yaml``) can be rerun after a crash.
    """

    workdir: str = "distill-run"
    teacher: str = "qwen2.5-coder-0.5b"
    """Catalog name, model folder or hub id of the teacher."""
    teacher_engine: Literal["auto", "transformers", "vllm", "llamacpp", "openai"] = "auto"
    """auto: llama.cpp on a CPU host where it is installed (the catalog's GGUF), else transformers."""
    teacher_engine_kwargs: dict[str, Any] = field(default_factory=dict)
    student: str = "smollm2-135m"
    tasks: list[TaskSource] = field(default_factory=lambda: [TaskSource()])
    """Training questions."""
    retrieval_index: str | None = None
    """Index folder: gives the agent the ``search`` tool (needed for QA questions)."""
    use_prefix: bool = True
    """First-thought prefixes (the teacher's first CoT paragraph starts its first step)."""
    prefix_max_tokens: int = 256
    """New tokens of the teacher's CoT answer the first paragraph is cut from."""
    cot_max_tokens: int = 1024
    """New tokens of a whole CoT answer (``distill cot``, the CoT-distillation baseline's data)."""
    cot_rag_k: int = 5
    """Passages shown with each QA question in ``distill cot`` when ``retrieval_index`` is set (eval's ``--rag-k``)."""
    teacher_prompt: Literal["full", "short"] = "full"
    student_prompt: Literal["full", "short"] = "short"
    max_steps: int = 5
    max_tokens: int = 512
    exec_timeout: float = 10.0
    temperature: float = 0.0
    batch_size: int = 8
    """Questions run at once (their model calls are batched into shared engine calls)."""
    keep_recovered_errors: bool = True
    """Keep correct runs whose code raised and was fixed later (paper: kept "for reflection")."""
    check_overlap: bool = True
    """Before collecting, refuse training questions that are held-out test questions (``distill/overlap.py``)."""
    manifest_dir: str | None = None
    """Also write the data files' manifests here (a folder in git; the data stays in ``workdir``)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation of the exported student (the paper's SAG by default)."""

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig(**self.train)
        if isinstance(self.evaluation, dict):
            self.evaluation = EvalConfig(**self.evaluation)
        self.tasks = [TaskSource(**t) if isinstance(t, dict) else t for t in self.tasks]
        if not self.tasks:
            raise ConfigError("tasks must list at least one task source")
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        for name in ("prefix_max_tokens", "cot_max_tokens", "cot_rag_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.teacher_engine not in ("auto", "transformers", "vllm", "llamacpp", "openai"):
            raise ConfigError(
                f"teacher_engine must be auto, transformers, vllm, llamacpp or openai, got {self.teacher_engine!r}"
            )

    # files of the run, one per stage
    @property
    def paths(self) -> dict[str, Path]:
        w = Path(self.workdir)
        return {
            "prefixes": w / "prefixes.jsonl",
            "trajectories": w / "trajectories.jsonl",
            "kept": w / "kept.jsonl",
            "filter_report": w / "filter-report.json",
            "sft": w / "sft.jsonl",
            "cot": w / "cot.jsonl",
            "sft_cot": w / "sft-cot.jsonl",
            "checkpoints": w / "checkpoints",
            "adapter": w / "adapter",
            "merged": w / "merged",
            "eval": w / "eval",
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_config(path: str | os.PathLike[str]) -> DistillConfig:
    """Read a ``DistillConfig`` from YAML; unknown keys are an error that names them.

    ``base: other.yaml`` (relative to the file) starts from another config: this file's keys replace
    the base's, and its ``train:`` / ``evaluation:`` keys replace those of the base's sections one by one.
    """
    data = _read_yaml(Path(path), ())
    known = {f.name for f in fields(DistillConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    try:
        return DistillConfig(**data)
    except TypeError as e:  # unknown keys of a nested section
        raise ConfigError(f"{path}: {e}") from None


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    import yaml

    if path.resolve() in seen:
        raise ConfigError(f"{path}: base configs form a cycle ({' -> '.join(map(str, (*seen, path)))})")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    merged = _read_yaml(path.parent / str(base), (*seen, path.resolve()))
    for key, value in data.items():
        if key in ("train", "evaluation") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = {**merged[key], **value}
        merged[key] = value
    return merged
