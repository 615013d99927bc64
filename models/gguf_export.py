"""Export a Hugging Face model folder (a merged student, say) to GGUF, for the llama.cpp engine.

Maintained tooling only: llama.cpp's own ``convert_hf_to_gguf.py`` writes an f16
GGUF (it is not in any wheel, so it is taken from the llama-cpp-python sdist of
the installed version, fetched once with ``pip download --no-binary``, with the
``gguf-py`` it ships: PyPI's ``gguf`` 0.19.0 lacks what the converter uses),
then ``llama_model_quantize`` from the installed llama.cpp library quantizes it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from tinyact.errors import ConfigError, DownloadError, ModelError

__all__ = ["QUANTS", "converter_dir", "export_gguf", "fine_tune_kept"]

QUANTS = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_1", "q4_0")
"""Output types: f16 as converted, or one of llama.cpp's quantizations of it."""


def converter_dir() -> Path:
    """A folder with llama.cpp's ``convert_hf_to_gguf.py`` (its ``conversion`` package, its ``gguf-py``), for the installed version."""
    from importlib.metadata import PackageNotFoundError, version

    from tinyact.models.catalog import tinyact_home

    try:
        ver = version("llama-cpp-python")
    except PackageNotFoundError:
        raise ImportError("GGUF export needs llama-cpp-python: pip install 'tinyact[llamacpp]'") from None
    dest = tinyact_home() / "llama.cpp-convert" / ver
    if (dest / "convert_hf_to_gguf.py").is_file():
        return dest
    downloads = tinyact_home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = downloads / f"llama_cpp_python-{ver}.tar.gz"
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(downloads), f"llama-cpp-python=={ver}"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if not sdist.is_file():
            raise DownloadError(f"could not download the llama-cpp-python {ver} sdist: {proc.stderr.strip()[-300:]}")
    tmp = dest.with_name(f".{ver}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    root = f"llama_cpp_python-{ver}/vendor/llama.cpp/"
    try:
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                name = m.name[len(root):] if m.name.startswith(root) else None
                if m.isfile() and name and (name == "convert_hf_to_gguf.py" or name.startswith(("conversion/", "gguf-py/gguf/"))):
                    target = tmp / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as dst:  # type: ignore[union-attr]
                        shutil.copyfileobj(src, dst)
        if not (tmp / "convert_hf_to_gguf.py").is_file():
            raise ModelError(f"{sdist.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def export_gguf(folder: str | os.PathLike[str], out: str | os.PathLike[str], quant: str = "q8_0") -> Path:
    """Write ``folder`` (a Hugging Face causal-LM folder) as a GGUF file ``out`` of type ``quant``.

    Raises:
        ConfigError: an unknown ``quant``, or ``folder`` is not a model folder.
        ModelError: the conversion or the quantization failed (the message ends with the converter's output).
    """
    quant = quant.lower()
    if quant not in QUANTS:
        raise ConfigError(f"quant must be one of {', '.join(QUANTS)}, got {quant!r}")
    src = Path(folder)
    if not (src / "config.json").is_file():
        raise ConfigError(f"{src} is not a Hugging Face model folder (no config.json)")
    dst = Path(out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    f16 = dst.with_name(f".{dst.name}.f16-{os.getpid()}")
    try:
        script = converter_dir() / "convert_hf_to_gguf.py"
        proc = subprocess.run([sys.executable, str(script), str(src), "--outfile", str(f16), "--outtype", "f16"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0 or not f16.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ModelError(f"convert_hf_to_gguf.py failed on {src} (exit {proc.returncode}):\n{tail}")
        if quant == "f16":
            f16.rename(dst)
            return dst
        _quantize(f16, dst, quant)
        return dst
    finally:
        f16.unlink(missing_ok=True)


def fine_tune_kept(gguf: str | os.PathLike[str], tuned: str | os.PathLike[str], base: str | os.PathLike[str],
                   conversations: list[list[dict[str, str]]], max_tokens: int = 1024) -> dict[str, Any]:
    """How much of a fine-tune a GGUF export keeps: on the assistant tokens of ``conversations`` (teacher-forced,
    up to ``max_tokens`` per conversation), the positions where the fine-tune changed the greedy next token
    (``tuned`` and ``base``, Hugging Face folders, disagree), and the share of those where the GGUF picks the
    tuned model's token. Near 1: the export answers like the student; near 0: like the base model (a 4-bit
    quantization of a 135M student can erase a small LoRA delta whole while agreeing with it on ~91% of all tokens).

    Returns ``{"tokens", "changed", "kept", "kept_share" (None when nothing changed), "agreement"}``.
    """
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinyact.models.engines.llamacpp_lib import default_threads, load_library

    tok = AutoTokenizer.from_pretrained(str(tuned))
    spans = []  # (token ids, index of the first assistant token)
    for msgs in conversations:
        if not msgs or msgs[-1].get("role") != "assistant":
            raise ConfigError("each conversation must end with an assistant turn")
        prompt = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)
        full = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
        start = len(prompt["input_ids"])
        if len(full) > start:
            spans.append((list(full[: start + max_tokens]), start))
    if not spans:
        raise ConfigError("no conversation has assistant tokens to compare")

    def greedy(folder: str | os.PathLike[str]) -> list[Any]:
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        with torch.inference_mode():
            return [model(torch.tensor([ids])).logits[0, start - 1 : len(ids) - 1].argmax(-1).numpy()
                    for ids, start in spans]

    want, was = greedy(tuned), greedy(base)
    load_library()
    from llama_cpp import Llama

    llm = Llama(str(gguf), n_ctx=max(len(ids) for ids, _ in spans), logits_all=True, n_threads=default_threads(),
                verbose=False)
    try:
        got = []
        for ids, start in spans:
            llm.reset()
            llm.eval(ids)
            got.append(np.asarray(llm.scores[start - 1 : len(ids) - 1]).argmax(-1))
    finally:
        llm.close()
    w, b, g = (np.concatenate(x) for x in (want, was, got))
    changed = w != b
    kept = int((g[changed] == w[changed]).sum())
    return {"tokens": int(w.size), "changed": int(changed.sum()), "kept": kept,
            "kept_share": round(kept / int(changed.sum()), 4) if changed.any() else None,
            "agreement": round(float((g == w).mean()), 4)}


def _quantize(src: Path, dst: Path, quant: str) -> None:
    from tinyact.models.engines.llamacpp_lib import default_threads, load_library

    llama = load_library()
    params = llama.llama_model_quantize_default_params()
    params.ftype = getattr(llama, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    params.nthread = default_threads()
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        code = llama.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if code != 0:
            raise ModelError(f"llama_model_quantize to {quant} failed with code {code}")
        tmp.rename(dst)
    finally:
        tmp.unlink(missing_ok=True)
