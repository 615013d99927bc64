"""Student training with TRL's SFTTrainer (LoRA or full, assistant-only loss) and export of a merged model."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyact import jsonl
from tinyact.distill.config import TrainConfig

__all__ = ["TrainResult", "export_model", "train_student"]


@dataclass
class TrainResult:
    output_dir: str
    """The adapter (LoRA) or the full model, with the tokenizer."""
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    """Training loss at each logging step, in order."""
    examples: int = 0
    resumed_from: str | None = None


def _loss_logger(path: Path | None) -> Any:
    from transformers import TrainerCallback

    class LossLogger(TrainerCallback):
        """Prints and appends (JSONL) each logged loss; keeps them for the result."""

        def __init__(self) -> None:
            self.losses: list[float] = []
            self.started = time.time()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if not logs or "loss" not in logs:
                return
            self.losses.append(float(logs["loss"]))  # the same on every process (gathered by the Trainer)
            if not state.is_world_process_zero:
                return
            rec = {"step": state.global_step, "max_steps": state.max_steps, "loss": logs["loss"],
                   "lr": logs.get("learning_rate"), "epoch": logs.get("epoch"),
                   "seconds": round(time.time() - self.started, 1)}
            print(f"step {rec['step']}/{rec['max_steps']} loss {rec['loss']:.4f} "
                  f"epoch {rec['epoch'] or 0:.2f} {rec['seconds']}s", flush=True)
            if path is not None:
                jsonl.append(path, [rec])

    return LossLogger()


def train_student(
    sft_path: str | os.PathLike[str],
    student: str,
    output_dir: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
) -> TrainResult:
    """Fine-tune ``student`` on an SFT JSONL with loss on assistant tokens only.

    Conversations are tokenized here (``masking.tokenize_conversation``), so
    the mask does not depend on ``{% generation %}`` markers in the chat
    template. Checkpoints go to ``checkpoint_dir`` (default
    ``output_dir/../checkpoints``); with ``resume``, training continues from
    the last one. The result (adapter or full model + tokenizer) is saved to
    ``output_dir``; losses are printed and appended to ``checkpoint_dir/loss.jsonl``.

    Runs unchanged under ``accelerate launch`` (DDP over processes, or FSDP):
    the Trainer splits the batches and syncs the gradients; only the main
    process writes the result, and every process returns it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    from tinyact.distill.masking import build_dataset
    from tinyact.models.catalog import resolve_model

    config = config or TrainConfig()
    out = Path(output_dir)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else out.parent / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = resolve_model(student)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_dataset(sft_path, tokenizer, config.max_length)
    args = config.sft_config(ckpt_dir)
    if args.gradient_checkpointing:
        args.gradient_checkpointing_kwargs = {"use_reentrant": False}
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    peft_config = None
    if config.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                                 target_modules=config.target_modules, task_type="CAUSAL_LM")
    logger = _loss_logger(ckpt_dir / "loss.jsonl")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[logger])
    last = get_last_checkpoint(str(ckpt_dir)) if resume else None
    started = time.time()
    trainer.train(resume_from_checkpoint=last)
    main = trainer.is_world_process_zero()
    tmp = out.with_name(out.name + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # every process takes part (FSDP gathers the weights); the main one writes
    if main:
        tokenizer.save_pretrained(str(tmp))
        (tmp / "tinyact-train.json").write_text(json.dumps(
            {"student": student, "base_path": str(path), "lora": config.lora, "examples": len(dataset),
             "steps": trainer.state.global_step, "losses": logger.losses,
             "processes": trainer.args.world_size}, indent=2) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(str(out), trainer.state.global_step, round(time.time() - started, 1), logger.losses,
                       len(dataset), last)


def adapter_base(folder: str | os.PathLike[str]) -> str | None:
    """The base model a LoRA adapter folder was trained on (from its ``adapter_config.json``); None for a
    full model folder."""
    cfg = Path(folder) / "adapter_config.json"
    return json.loads(cfg.read_text())["base_model_name_or_path"] if cfg.is_file() else None


def export_model(
    trained_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, base: str | None = None
) -> Path:
    """Write a standalone model folder (safetensors + tokenizer + chat template) that the
    transformers and vLLM engines load by path. A LoRA adapter is merged into its base
    (``base``, default: the base recorded in the adapter); a full model is re-saved.
    Written to a temporary folder and renamed, so a crash leaves no half folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinyact.models.catalog import resolve_model

    src, out = Path(trained_dir), Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if (recorded := adapter_base(src)) is not None:
        from peft import PeftModel

        base_path = resolve_model(base) if base else recorded
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, str(src)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    model.save_pretrained(str(tmp), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
