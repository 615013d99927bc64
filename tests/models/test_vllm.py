"""VLLMEngine specifics on the real smollm2-135m: candidates, prefix caching, LoRA, errors."""

from __future__ import annotations

import pytest

from tinyact.errors import ConfigError
from tinyact.schema import Message, SamplingParams

from .conftest import require_vllm

pytestmark = [pytest.mark.slow, pytest.mark.vllm, require_vllm]

CONV = [Message(role="user", content="Write one short sentence about the sea.")]


def test_n8_candidates_in_one_call_are_distinct(vllm_engine):
    (outs,) = vllm_engine.generate([CONV], n=8, sampling=SamplingParams(temperature=1.0, max_tokens=16, seed=7))
    assert len(outs) == 8
    assert len({c.text for c in outs}) >= 6, [c.text for c in outs]
    assert all(c.prompt_tokens == outs[0].prompt_tokens > 0 for c in outs)


def test_many_conversations_in_one_call(vllm_engine):
    convs = [[Message(role="user", content=f"Say the number {i}.")] for i in range(12)]
    out = vllm_engine.generate(convs, n=3, sampling=SamplingParams(temperature=0.7, max_tokens=6, seed=0))
    assert len(out) == 12 and all(len(row) == 3 for row in out)


def test_prefix_caching_is_on(vllm_engine):
    assert vllm_engine.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching


def test_engine_identity_and_load_engine_name(vllm_engine):
    assert vllm_engine.name == "vllm"
    assert vllm_engine.model_name.endswith("smollm2-135m")


def test_lora_adapter_loads_and_changes_outputs(vllm_engine, tiny_lora):
    s = SamplingParams(temperature=0, max_tokens=16)
    base = vllm_engine.generate([CONV], sampling=s)[0][0]
    adapted = vllm_engine.generate([CONV], sampling=s, lora=tiny_lora)[0][0]
    assert adapted.text and adapted.completion_tokens > 0
    assert adapted.text != base.text
    # Same adapter again: served from vLLM's cache under the same id.
    assert vllm_engine.generate([CONV], sampling=s, lora=tiny_lora)[0][0].text == adapted.text
    assert vllm_engine.generate([CONV], sampling=s)[0][0].text == base.text


def test_lora_errors(vllm_engine, tmp_path):
    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        vllm_engine.generate([CONV], lora=tmp_path)
    with pytest.raises(ConfigError, match="n must be >= 1"):
        vllm_engine.generate([CONV], n=0)
    with pytest.raises(ConfigError, match="prefix has 2 entries"):
        vllm_engine.generate([CONV], prefix=["a", "b"])
    assert vllm_engine.generate([]) == []


def test_a_wrong_adapter_fails_before_the_model_loads(smollm2_path, tmp_path):
    from tinyact.models.engines.vllm import VLLMEngine

    with pytest.raises(ConfigError, match="not a PEFT adapter"):
        VLLMEngine(str(smollm2_path), lora=tmp_path)
