"""bench/gpu_check.py's own parts on CPU: the random bf16 Qwen2 folder, its tokenizer, the engine check, bad input."""

from __future__ import annotations

import json

import pytest

from tinyact.bench import gpu_check


def test_random_qwen2_folder_loads_and_generates_in_bf16(tmp_path):
    info = gpu_check.write_model(tmp_path / "m", None)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["dtype"] == "bfloat16"
    assert config["hidden_size"] // config["num_attention_heads"] == 64  # a head size vLLM's kernels take
    assert info["vocab"] == config["vocab_size"] and info["vocab"] % 64 == 0
    engine, detail = gpu_check.check_engine(tmp_path / "m", "cpu")
    assert detail["dtype"] == "torch.bfloat16" and detail["device"] == "cpu"
    # the tiny tokenizer round-trips the agent format and renders ChatML
    tok = engine.tokenizer
    text = "Thought: go\nCode:\n```py\nprint(6 * 7)\n```<end_code>"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_bad_device_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--device", "tpu"])
    assert exc.value.code == 2 and "--device must be cuda or cpu" in capsys.readouterr().err
