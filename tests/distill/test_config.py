"""DistillConfig: YAML loading, validation messages, the paper's training defaults, the example configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyact.distill import DistillConfig, TaskSource, TrainConfig, load_config
from tinyact.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_paper_defaults():
    t = TrainConfig()
    assert (t.lora, t.lora_r, t.lora_alpha, t.lora_dropout, t.target_modules) == (True, 64, 128, 0.05, "all-linear")
    assert t.learning_rate == 2e-4 and t.epochs == 2
    assert t.per_device_batch_size * t.gradient_accumulation_steps == 8


def test_sft_config_overrides_only_defaults(tmp_path):
    args = TrainConfig(extra={"weight_decay": 0.01}).sft_config(tmp_path)
    assert args.learning_rate == 2e-4 and args.num_train_epochs == 2 and args.gradient_checkpointing
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 8
    assert args.weight_decay == 0.01 and args.output_dir == str(tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_steps": 0}, "max_steps must be >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"tasks": []}, "at least one task source"),
        ({"tasks": [{"source": "benchmark"}]}, "needs name="),
        ({"tasks": [{"source": "web"}]}, "code_tasks, benchmark or jsonl"),
        ({"train": {"lora_r": 0}}, "lora_r must be >= 1"),
        ({"train": {"lora_dropout": 1.5}}, "lora_dropout"),
        ({"teacher_engine": "tgi"}, "teacher_engine"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**kwargs)


def test_yaml_unknown_keys_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("teacher: x\nteachr: y\n")
    with pytest.raises(ConfigError, match="teachr"):
        load_config(p)
    p.write_text("train: {lora_rank: 3}\n")
    with pytest.raises(ConfigError, match="lora_rank"):
        load_config(p)


def test_yaml_base_config(tmp_path):
    (tmp_path / "base.yaml").write_text("teacher: big\nuse_prefix: true\nworkdir: a\n"
                                        "train: {lora_r: 8, epochs: 3}\nevaluation: {samples: 1, parallel: 4}\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "c.yaml"
    child.write_text("base: ../base.yaml\nuse_prefix: false\nworkdir: b\ntrain: {epochs: 1}\n")
    cfg = load_config(child)
    assert (cfg.teacher, cfg.use_prefix, cfg.workdir) == ("big", False, "b")
    assert (cfg.train.lora_r, cfg.train.epochs) == (8, 1)  # a section's keys replaced one by one
    assert (cfg.evaluation.samples, cfg.evaluation.parallel) == (1, 4)
    (tmp_path / "base.yaml").write_text("base: sub/c.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(child)
    child.write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: no such config file"):
        load_config(child)


def test_cpu_paper_configs_differ_only_in_the_prefix():
    with_prefix, without = load_config(EXAMPLES / "distill-cpu-paper.yaml"), load_config(
        EXAMPLES / "distill-cpu-paper-noprefix.yaml")
    assert with_prefix.use_prefix and not without.use_prefix
    a, b = with_prefix.to_dict(), without.to_dict()
    assert {k for k in a if a[k] != b[k]} == {"use_prefix", "workdir", "manifest_dir"}


@pytest.mark.parametrize("name", ["distill-gpu.yaml", "distill-gpu-1.5b.yaml"])
def test_gpu_examples_are_the_papers_recipe(name):
    """Kang et al. 2025: 32B teacher on vLLM, 0.5B/1.5B students, LoRA r=64 alpha=128, lr 2e-4,
    2 epochs, effective batch 8; evaluation with SAG k=8, T=0.4, top_p 0.8, max 5 steps."""
    cfg = load_config(EXAMPLES / name)
    assert (cfg.teacher, cfg.teacher_engine) == ("Qwen/Qwen2.5-32B-Instruct", "vllm")
    size = "1.5B" if "1.5b" in name else "0.5B"
    assert cfg.student == f"Qwen/Qwen2.5-{size}-Instruct" and size.lower() in cfg.workdir
    assert cfg.use_prefix and cfg.max_steps == 5 and cfg.retrieval_index
    assert {(t.name, t.split) for t in cfg.tasks} == {("hotpotqa", "train"), ("math", "train"),
                                                      ("math", "train-medium")}
    t = cfg.train
    assert (t.lora, t.lora_r, t.lora_alpha, t.learning_rate, t.epochs) == (True, 64, 128, 2e-4, 2)
    assert t.per_device_batch_size * t.gradient_accumulation_steps == 8 and t.max_steps == -1
    e = cfg.evaluation
    assert (e.engine, e.samples, e.temperature, e.top_p, e.max_steps) == ("vllm", 8, 0.4, 0.8, 5)
    assert {b.name for b in e.benchmarks} == {"hotpotqa", "2wiki", "bamboogle", "musique", "math500", "gsm-hard",
                                              "aime", "olymmath"}
    assert all(b.index for b in e.benchmarks if b.name in ("hotpotqa", "2wiki", "bamboogle", "musique"))
    assert all(b.limit is None for b in e.benchmarks)  # the full test sets


def test_evaluation_defaults_are_sag_and_validated():
    e = DistillConfig().evaluation
    assert (e.samples, e.temperature, e.top_p, e.max_steps, e.benchmarks) == (8, 0.4, 0.8, 5, [])
    with pytest.raises(ConfigError, match="evaluation.samples > 1 needs temperature > 0"):
        DistillConfig(evaluation={"temperature": 0})
    with pytest.raises(ConfigError, match="needs name="):
        DistillConfig(evaluation={"benchmarks": [{"name": ""}]})


@pytest.mark.parametrize("name", ["distill-cpu.yaml", "distill-gpu.yaml"])
def test_example_configs_load(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.tasks and isinstance(cfg.tasks[0], TaskSource) and isinstance(cfg.train, TrainConfig)
    if name == "distill-gpu.yaml":
        assert cfg.teacher == "Qwen/Qwen2.5-32B-Instruct" and cfg.train.lora_r == 64
    else:
        assert cfg.teacher == "qwen2.5-coder-0.5b" and cfg.student == "smollm2-135m"


def test_code_task_ids_differ_by_seed():
    from tinyact.distill import load_tasks

    train = load_tasks([TaskSource(n=14, seed=1)])
    held = load_tasks([TaskSource(n=14, seed=2)])
    assert not {q.id for q in train} & {q.id for q in held}
    assert all(q.metadata["grader"] == "code" for q in train)
