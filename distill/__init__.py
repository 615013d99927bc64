"""Distillation: first-thought prefixes, teacher trajectories, filtering, SFT data, training (TRL), export.

Heavy libraries (torch, transformers, trl, peft, datasets) load inside the functions that use them.
"""

from __future__ import annotations

from tinyact.distill.collect import CollectSummary, collect_trajectories, summarize_trajectories
from tinyact.distill.cot import generate_cot_answers, write_cot_sft_data
from tinyact.distill.config import DistillConfig, TaskSource, TrainConfig, load_config
from tinyact.distill.filtering import FilterReport, filter_file, filter_trajectories, reject_reason
from tinyact.distill.masking import assistant_spans, build_dataset, tokenize_conversation
from tinyact.distill.pipeline import Pipeline
from tinyact.distill.prefixes import first_thought, generate_prefixes, load_prefixes, make_prefix
from tinyact.distill.sft_data import (
    from_smolagents_messages,
    import_smolagents_logs,
    student_system_prompt,
    to_sft_example,
    write_sft_data,
)
from tinyact.distill.questions import grade, load_tasks
from tinyact.distill.train import TrainResult, export_model, train_student

__all__ = [
    "CollectSummary",
    "DistillConfig",
    "FilterReport",
    "Pipeline",
    "TaskSource",
    "TrainConfig",
    "TrainResult",
    "assistant_spans",
    "build_dataset",
    "collect_trajectories",
    "export_model",
    "filter_file",
    "filter_trajectories",
    "first_thought",
    "generate_cot_answers",
    "generate_prefixes",
    "grade",
    "import_smolagents_logs",
    "from_smolagents_messages",
    "load_config",
    "load_prefixes",
    "load_tasks",
    "make_prefix",
    "reject_reason",
    "student_system_prompt",
    "summarize_trajectories",
    "tokenize_conversation",
    "to_sft_example",
    "train_student",
    "write_cot_sft_data",
    "write_sft_data",
]
__all__.sort()
