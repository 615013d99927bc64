"""Student variants: default paths unchanged, students/<student>-<data>/ otherwise, one-line errors for missing
data, and a real tiny CoT-data training of smollm2-135m into its variant folder, exported to GGUF and evaluated
on llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tinyact.distill import DistillConfig
from tinyact.distill.cli import app
from tinyact.distill.config import EvalConfig
from tinyact.distill.variants import folder_name, resolve_variant
from tinyact.errors import ConfigError

runner = CliRunner()


def test_default_variant_is_the_work_folders_own_layout(tmp_path):
    cfg = DistillConfig(workdir=str(tmp_path / "w"))
    v = resolve_variant(cfg)
    w = tmp_path / "w"
    assert (v.name, v.student, v.data, v.options) == (None, "smollm2-135m", "agent", "")
    assert (v.train_file, v.adapter, v.checkpoints, v.merged, v.eval) == (
        w / "sft.jsonl", w / "adapter", w / "checkpoints", w / "merged", w / "eval")
    assert cfg.paths["sft_cot"] == w / "sft-cot.jsonl"


def test_student_or_data_choose_a_students_folder(tmp_path):
    cfg = DistillConfig(workdir=str(tmp_path / "w"), student="smollm2-135m")
    students = tmp_path / "w" / "students"
    v = resolve_variant(cfg, "qwen2.5-coder-0.5b", "cot")
    assert v.name == "qwen2.5-coder-0.5b-cot" and v.train_file == tmp_path / "w" / "sft-cot.jsonl"
    assert (v.adapter, v.checkpoints, v.merged, v.eval) == tuple(
        students / "qwen2.5-coder-0.5b-cot" / d for d in ("adapter", "checkpoints", "merged", "eval"))
    only_data = resolve_variant(cfg, data="cot")  # the config's student
    assert only_data.folder == students / "smollm2-135m-cot" and only_data.student == "smollm2-135m"
    only_student = resolve_variant(cfg, student="qwen2.5-coder-0.5b")  # agent data by default
    assert only_student.folder == students / "qwen2.5-coder-0.5b-agent"
    assert only_student.train_file == tmp_path / "w" / "sft.jsonl"
    assert only_student.options == " --student qwen2.5-coder-0.5b --data agent"
    with pytest.raises(ConfigError, match="--data must be one of agent, cot"):
        resolve_variant(cfg, data="trajectories")


def test_folder_names_are_safe(tmp_path):
    model = tmp_path / "models" / "my student"
    model.mkdir(parents=True)
    assert folder_name("qwen2.5-coder-0.5b") == "qwen2.5-coder-0.5b"
    assert folder_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen_Qwen2.5-0.5B-Instruct"  # a hub id
    assert folder_name(str(model) + "/") == "my_student"  # a local folder: its own name


def test_eval_engine_takes_llamacpp():
    assert EvalConfig(engine="llamacpp").engine == "llamacpp"
    with pytest.raises(ConfigError, match="evaluation.engine must be"):
        EvalConfig(engine="llama")


def _config(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "distill.yaml"
    path.write_text(yaml.safe_dump({"workdir": str(tmp_path / "w"), **extra}))
    return path


def test_missing_cot_data_is_one_line_naming_the_file_and_its_command(tmp_path):
    cfg = _config(tmp_path)
    r = runner.invoke(app, ["train", str(cfg), "--student", "smollm2-135m", "--data", "cot"])
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line, r.output
    assert str(tmp_path / "w" / "sft-cot.jsonl") in line and "tinyact distill sft-data" in line and "--data cot" in line
    r = runner.invoke(app, ["train", str(cfg)])  # the default: sft.jsonl, made by sft-data
    assert r.exit_code == 2 and "sft.jsonl does not exist" in r.output
    assert not (tmp_path / "w" / "students").exists()


def test_export_and_llamacpp_eval_without_their_inputs_are_one_line(tmp_path):
    cfg = _config(tmp_path, evaluation={"engine": "llamacpp", "benchmarks": [{"name": "gsm-hard", "limit": 1}]})
    r = runner.invoke(app, ["export", str(cfg), "--data", "cot"])
    assert r.exit_code == 2 and "no trained student at" in r.output and "--data cot" in r.output
    r = runner.invoke(app, ["export", str(cfg), "--data", "cot", "--gguf", "q3_weird"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["eval", str(cfg), "--data", "cot"])
    assert r.exit_code == 2 and "model.gguf" in r.output and "--gguf q8_0" in r.output


def _cot(a: int, b: int) -> dict:
    return {"id": f"q{a}", "messages": [
        {"role": "system", "content": "Answer step by step; put the final answer in \\boxed{}."},
        {"role": "user", "content": f"What is {a} + {b}?"},
        {"role": "assistant", "content": f"{a} plus {b} is {a + b}. The answer is \\boxed{{{a + b}}}."},
    ]}


@pytest.mark.slow
def test_tiny_cot_training_lands_in_its_variant_folder(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("TINYACT_SHARED_DATA", str(shared_data))
    work = tmp_path / "w"
    work.mkdir()
    (work / "sft-cot.jsonl").write_text("".join(json.dumps(_cot(a, b)) + "\n" for a, b in [(3, 4), (12, 5), (7, 9)]))
    cfg = _config(tmp_path, manifest_dir=str(tmp_path / "manifests"), train={
        "lora_r": 4, "lora_alpha": 8, "per_device_batch_size": 2, "gradient_accumulation_steps": 1,
        "max_length": 128, "max_steps": 2, "save_steps": 100, "warmup_ratio": 0.0, "gradient_checkpointing": False},
        evaluation={"engine": "llamacpp", "max_steps": 1, "max_tokens": 8, "samples": 1, "parallel": 1,
                    "benchmarks": [{"name": "gsm-hard", "limit": 1}]})
    r = runner.invoke(app, ["train", str(cfg), "--student", "smollm2-135m", "--data", "cot"])
    assert r.exit_code == 0, r.output
    variant = work / "students" / "smollm2-135m-cot"
    assert (variant / "adapter" / "adapter_model.safetensors").is_file()
    assert (variant / "checkpoints" / "loss.jsonl").is_file()
    assert not (work / "adapter").exists() and not (work / "checkpoints").exists()  # the default is untouched
    manifest = json.loads((variant / "train-manifest.json").read_text())
    import hashlib

    assert manifest["student"] == "smollm2-135m" and manifest["data"] == "cot"
    assert manifest["data_sha256"] == hashlib.sha256((work / "sft-cot.jsonl").read_bytes()).hexdigest()
    assert manifest["examples"] == 3 and manifest["steps"] == 2 and manifest["seconds"] > 0
    assert manifest["loss_first"] > 0 and manifest["loss_last"] > 0 and manifest["settings"]["lora_r"] == 4
    assert json.loads((tmp_path / "manifests" / "smollm2-135m-cot-train.json").read_text()) == manifest

    r = runner.invoke(app, ["export", str(cfg), "--student", "smollm2-135m", "--data", "cot", "--gguf", "q4_1"])
    assert r.exit_code == 0, r.output
    gguf = variant / "merged" / "model.gguf"
    assert (variant / "merged" / "config.json").is_file() and gguf.read_bytes()[:4] == b"GGUF"
    check = json.loads((variant / "merged" / "model.gguf.check.json").read_text())  # how much of the LoRA it keeps
    assert check["quant"] == "q4_1" and check["conversations"] == 3 and check["tokens"] > 0, check
    assert '"fine_tune_kept"' in r.output
    assert json.loads((tmp_path / "manifests" / "smollm2-135m-cot-gguf.json").read_text()) == check

    r = runner.invoke(app, ["eval", str(cfg), "--student", "smollm2-135m", "--data", "cot"])
    assert r.exit_code == 0, r.output
    run = variant / "eval" / "gsm-hard-k1"
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == str(gguf) and config["engine"] == "llamacpp"
    assert len((run / "results.jsonl").read_text().splitlines()) == 1
