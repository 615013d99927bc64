"""llama.cpp beyond the shared contract: prompt cache, k samples in one batch, threads, bad input, its server."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.models.conftest import free_port, require_llamacpp
from tinyact.errors import ConfigError, EngineError, ModelError, UnknownModelError
from tinyact.schema import Message, SamplingParams

pytestmark = [pytest.mark.slow, require_llamacpp]

SYSTEM = Message(role="system", content="You are a careful assistant. " * 40)
GREEDY = SamplingParams(temperature=0, max_tokens=12)


def conv(*turns: str) -> list[Message]:
    roles = ["user", "assistant"]
    return [SYSTEM] + [Message(role=roles[i % 2], content=t) for i, t in enumerate(turns)]  # type: ignore[arg-type]


def test_grown_conversation_reuses_the_cached_prefix(llamacpp_engine):
    e = llamacpp_engine
    e.clear_cache()
    first = conv("Name a colour.")
    (a,) = e.generate([first], sampling=GREEDY)[0]
    before = dict(e.stats)
    grown = conv("Name a colour.", a.text, "Name another one.")
    (b,) = e.generate([grown], sampling=GREEDY)[0]
    cached = e.stats["cached_tokens"] - before["cached_tokens"]
    # everything up to the first prompt's end came from the cache; only the new turns were evaluated
    assert cached >= a.prompt_tokens - 1, (cached, a.prompt_tokens)
    assert b.prompt_tokens > a.prompt_tokens
    # and the cache does not change the answer: the same call with nothing cached
    e.clear_cache()
    assert e.generate([grown], sampling=GREEDY)[0][0].text == b.text


def test_one_system_prompt_serves_several_tasks(llamacpp_engine):
    e = llamacpp_engine
    e.clear_cache()
    e.generate([conv("Task one: say hi.")], sampling=GREEDY)
    before = e.stats["cached_tokens"]
    (c,) = e.generate([conv("Task two: say bye.")], sampling=GREEDY)[0]
    # the system prompt (about 250 tokens) was not evaluated again
    assert e.stats["cached_tokens"] - before >= 240 and c.prompt_tokens > 250
    # and task one's own slot survived task two (several slots): its prompt is still cached whole
    before = e.stats["cached_tokens"]
    (again,) = e.generate([conv("Task one: say hi.")], sampling=GREEDY)[0]
    assert e.stats["cached_tokens"] - before == again.prompt_tokens


def test_k_samples_decode_as_one_batch_and_are_seeded(llamacpp_engine):
    s = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=16, seed=7)
    (row,) = llamacpp_engine.generate([conv("Write a word.")], n=8, sampling=s)
    texts = [c.text for c in row]
    assert len(texts) == 8 and len(set(texts)) >= 5, texts
    assert [c.text for c in llamacpp_engine.generate([conv("Write a word.")], n=8, sampling=s)[0]] == texts
    # more samples than one batch holds (max_sequences=16): split into rounds, still n of them
    many = llamacpp_engine.generate([conv("Write a word.")], n=20, sampling=s.model_copy(update={"max_tokens": 4}))
    assert len(many[0]) == 20 and len({c.text for c in many[0]}) >= 10


def test_concurrent_calls_are_serialized_and_each_gets_its_answer(llamacpp_engine):
    convs = [conv(f"What is {i} plus {i}?") for i in range(4)]
    alone = [llamacpp_engine.generate([c], sampling=GREEDY)[0][0].text for c in convs]
    got: dict[int, str] = {}
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            got[i] = llamacpp_engine.generate([convs[i]], sampling=GREEDY)[0][0].text
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and [got[i] for i in range(4)] == alone
    # and several conversations in one call: decoded together, same answers
    assert [r[0].text for r in llamacpp_engine.generate(convs, sampling=GREEDY)] == alone


def test_long_prompt_and_the_context_limit(llamacpp_engine):
    e = llamacpp_engine  # n_ctx=2048
    long = [Message(role="user", content="word " * 1500 + "\nHow many words?")]
    (c,) = e.generate([long], sampling=SamplingParams(temperature=0, max_tokens=8))[0]
    assert c.prompt_tokens > 1500 and c.completion_tokens > 0
    # a completion that would run past the context stops there, as "length"
    (near,) = e.generate([long], sampling=SamplingParams(temperature=0.8, max_tokens=2000, seed=1))[0]
    assert near.prompt_tokens + near.completion_tokens <= e.n_ctx
    too_long = [Message(role="user", content="word " * 3000)]
    with pytest.raises(EngineError, match=r"more than this engine's context of 2048.*n_ctx"):
        e.generate([too_long], sampling=GREEDY)
    assert e.generate([conv("Hi")], sampling=GREEDY)[0][0].text  # still usable afterwards


def test_bad_input_fails_clearly(llamacpp_engine, tmp_path):
    from tinyact.models.engines import load_engine
    from tinyact.models.engines.llamacpp import LlamaCppEngine

    with pytest.raises(ConfigError, match="n must be >= 1"):
        llamacpp_engine.generate([conv("Hi")], n=0)
    with pytest.raises(UnknownModelError, match="nor a .gguf file"):
        load_engine(str(tmp_path / "missing.gguf"), engine="llamacpp")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not load"):
        LlamaCppEngine(fake)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UnknownModelError, match="not a .gguf file"):
        LlamaCppEngine(tmp_path / "model.safetensors")
    r = subprocess.run([sys.executable, "-m", "tinyact.cli", "chat", "--engine", "llamacpp", "--model", str(fake), "Hi"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode != 0 and "could not load" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_memory_is_reported(llamacpp_engine):
    m = llamacpp_engine.memory()
    assert 50e6 < m["model_bytes"] < 150e6  # smollm2-135m in Q4_1
    assert m["kv_cache_bytes"] > 0 and m["rss_bytes"] > m["model_bytes"]


def test_compute_options_reach_llamacpp_and_bad_ones_are_refused():
    from tinyact.models.engines.llamacpp import LlamaCppEngine

    with pytest.raises(ConfigError, match="flash_attn must be auto, on or off"):
        LlamaCppEngine("smollm2-135m", flash_attn="yes")
    with LlamaCppEngine("smollm2-135m", n_ctx=1024, n_threads=1, n_threads_batch=2, n_ubatch=32, flash_attn="off") as e:
        lib = e._lib
        assert (lib.llama_n_threads(e._ctx), lib.llama_n_threads_batch(e._ctx)) == (1, 2)
        assert (lib.llama_n_batch(e._ctx), lib.llama_n_ubatch(e._ctx)) == (512, 32)
        (c,) = e.generate([conv("Hi")], sampling=GREEDY)[0]  # a prompt of several ubatches
        assert c.prompt_tokens > 3 * 32 and c.text


def test_auto_picks_llamacpp_for_gguf_models_on_a_cpu(tmp_path, monkeypatch, smollm2_path):
    from tinyact.models.engines import pick_engine

    monkeypatch.delenv("TINYACT_ENGINE", raising=False)
    assert pick_engine("smollm2-135m") == "llamacpp"
    assert pick_engine(str(smollm2_path)) == "transformers"  # a safetensors folder (a merged student, say)
    assert pick_engine("smollm2-135m", dtype="bfloat16") == "transformers"  # arguments only transformers takes
    monkeypatch.setenv("TINYACT_ENGINE", "transformers")
    assert pick_engine("smollm2-135m") == "transformers"


@pytest.fixture(scope="module")
def llamacpp_server(tmp_path_factory):
    """`tinyact serve-model smollm2-135m --engine llamacpp`, stopped with Ctrl-C at the end."""
    folder = tmp_path_factory.mktemp("llamacpp-server")
    log, port = folder / "serve-model.log", free_port()
    url = f"http://127.0.0.1:{port}/v1"
    cmd = [sys.executable, "-m", "tinyact.cli", "serve-model", "smollm2-135m", "--engine", "llamacpp",
           "--port", str(port)]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while f"ready: {url}" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve-model did not get ready (exit {proc.poll()}):\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    assert code == 130, log.read_text(errors="replace")[-2000:]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after serve-model stopped"


def test_serve_model_on_llamacpp_answers_openai_requests(llamacpp_server):
    import httpx

    from tinyact.models.engines.openai import OpenAIEngine

    assert [m["id"] for m in httpx.get(f"{llamacpp_server}/models").json()["data"]] == ["smollm2-135m"]
    with OpenAIEngine(llamacpp_server, vllm_extensions=False, timeout=120) as remote:
        assert remote.model_name == "smollm2-135m"
        count = [Message(role="user", content="Count from 1 to 20, separated by commas.")]
        (c,) = remote.generate([count], sampling=SamplingParams(temperature=0, max_tokens=40), stop=["5"])[0]
        # the server cuts the stop string but does not say which one ended the text (plain OpenAI "stop")
        assert c.finish_reason in ("stop", "eos") and c.text.startswith("1") and "5" not in c.text, c
        assert c.prompt_tokens > 0 and c.completion_tokens > 0
        (long,) = remote.generate([count], sampling=SamplingParams(temperature=0, max_tokens=3))[0]
        assert long.finish_reason == "length"


def test_serve_model_llamacpp_rejects_lora():
    r = subprocess.run([sys.executable, "-m", "tinyact.cli", "serve-model", "smollm2-135m", "--engine", "llamacpp",
                        "--lora", "a=/tmp"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0 and "LoRA adapters are served by vLLM only" in r.stderr, r.stderr




def test_a_model_folder_exports_to_gguf_that_llamacpp_runs(smollm2_path, tmp_path):
    """A merged student is a folder like smollm2's prepared one: llama.cpp's converter, then its quantizer."""
    from tinyact.models.engines.llamacpp import LlamaCppEngine
    from tinyact.models.gguf_export import export_gguf

    out = export_gguf(smollm2_path, tmp_path / "student.gguf", "q8_0")
    with LlamaCppEngine(out, n_ctx=512) as engine:
        assert "<|im_start|>" in engine.template.source  # the folder's chat template travelled along
        count = [Message(role="user", content="Count from 1 to 10, separated by commas.")]
        (c,) = engine.generate([count], sampling=SamplingParams(temperature=0, max_tokens=12))[0]
    assert c.text.startswith("1, 2, 3"), c.text
    with pytest.raises(ConfigError, match="quant must be one of"):
        export_gguf(smollm2_path, tmp_path / "x.gguf", "q3_weird")


def test_the_gguf_check_tells_an_export_of_the_student_from_one_of_its_base(smollm2_path, tmp_path):
    """fine_tune_kept: a "fine-tune" made by hand (the last MLP zeroed) changes many greedy tokens; its own f16
    GGUF keeps nearly all of them, the base's GGUF nearly none, though both agree with it on most tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tinyact.models.gguf_export import export_gguf, fine_tune_kept

    tuned = tmp_path / "tuned"
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_path), dtype=torch.float32)
    with torch.no_grad():
        model.model.layers[-1].mlp.down_proj.weight.zero_()
    model.save_pretrained(str(tuned))
    AutoTokenizer.from_pretrained(str(smollm2_path)).save_pretrained(str(tuned))
    convs = [[{"role": "user", "content": f"What is {a} times {b}?"},
              {"role": "assistant", "content": f"Thought: I multiply.\nCode:\n```py\nx = {a} * {b}\n"
                                               f"final_answer(x)\n```<end_code>"}] for a, b in [(17, 23), (409, 6)]]
    own = fine_tune_kept(export_gguf(tuned, tmp_path / "own.gguf", "f16"), tuned, smollm2_path, convs)
    base = fine_tune_kept(export_gguf(smollm2_path, tmp_path / "base.gguf", "f16"), tuned, smollm2_path, convs)
    assert own["tokens"] == base["tokens"] > 20 and own["changed"] == base["changed"] >= 3, (own, base)
    assert own["kept_share"] >= 0.9 and base["kept_share"] <= 0.1, (own, base)
    assert own["agreement"] > base["agreement"], (own, base)
    with pytest.raises(ConfigError, match="assistant turn"):
        fine_tune_kept(tmp_path / "own.gguf", tuned, smollm2_path, [convs[0][:1]])


def test_a_prompt_past_the_training_context_is_refused_even_in_a_larger_cache():
    """n_ctx is shared by every sequence (eval --parallel gives 8k cells per conversation): one
    prompt is still bound by the model's training context (smollm2-135m: 8192)."""
    from tinyact.models.engines.llamacpp import LlamaCppEngine

    with LlamaCppEngine("smollm2-135m", n_ctx=16384, n_threads=1) as e:
        with pytest.raises(EngineError, match=r"or the 8192 the model was trained on"):
            e.generate([[Message(role="user", content="word " * 9000)]], sampling=GREEDY)
