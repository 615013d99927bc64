"""Engines serving several conversations at once get room to keep each one's prompt cached."""

from __future__ import annotations

import pytest

from tinyact.models.engines import parallel_kwargs


def test_llamacpp_gets_a_cache_slot_and_cells_per_conversation():
    assert parallel_kwargs("llamacpp", 8) == {"cache_slots": 8, "n_ctx": 65536}
    assert parallel_kwargs("llamacpp", 2) == {"cache_slots": 2, "n_ctx": 16384}  # never below the default
    assert parallel_kwargs("llamacpp", 1, {"n_threads": 1}) == {"n_threads": 1}


def test_given_values_win_and_other_engines_are_untouched():
    assert parallel_kwargs("llamacpp", 8, {"n_ctx": 4096}) == {"cache_slots": 8, "n_ctx": 4096}
    assert parallel_kwargs("transformers", 8, {"dtype": "bfloat16"}) == {"dtype": "bfloat16"}


def test_eight_agents_keep_their_prompts_cached(tmp_path):
    """The reason for it: 8 growing conversations in one llama.cpp engine each reuse their own prefix."""
    pytest.importorskip("llama_cpp")
    from tinyact.models.catalog import resolve_gguf
    from tinyact.models.engines import load_engine
    from tinyact.schema import Message, SamplingParams

    try:
        resolve_gguf("smollm2-135m")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"smollm2-135m's GGUF is not prepared here: {e}")
    engine = load_engine("smollm2-135m", "llamacpp", **parallel_kwargs("llamacpp", 8, {"n_threads": 1}))
    try:
        words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
        convs = [[Message(role="system", content=f"Agent {i}. " + " ".join(words * 40)),
                  Message(role="user", content=f"Task {i}: say hi.")] for i in range(8)]
        sampling = SamplingParams(temperature=0, max_tokens=4)
        engine.generate(convs, sampling=sampling)
        before = dict(engine.stats)
        grown = [[*c, Message(role="assistant", content="hi"), Message(role="user", content="Observation: ok")]
                 for c in convs]
        engine.generate(grown, sampling=sampling)
        new_prompt = engine.stats["prompt_tokens"] - before["prompt_tokens"]
        new_cached = engine.stats["cached_tokens"] - before["cached_tokens"]
        assert new_cached / new_prompt > 0.9, (new_cached, new_prompt)  # each step reuses its own prefix
    finally:
        engine.close()
