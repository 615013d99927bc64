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
