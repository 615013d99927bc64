"""TransformersEngine on the real smollm2-135m model."""

from __future__ import annotations

import pytest

from tinyact.serve.engines.transformers import render_prompt
from tinyact.types import Message, SamplingParams

pytestmark = pytest.mark.slow

CONV = [Message(role="user", content="Write one short sentence about the sea.")]


def test_sampled_completions_are_distinct(smol_engine):
    (outs,) = smol_engine.generate([CONV], n=4, sampling=SamplingParams(temperature=1.0, max_tokens=24, seed=0))
    texts = [c.text for c in outs]
    assert len(texts) == 4
    assert len(set(texts)) >= 3, texts


def test_greedy_is_reproducible_and_n_copies(smol_engine):
    s = SamplingParams(temperature=0, max_tokens=20)
    a = smol_engine.generate([CONV], sampling=s)[0][0].text
    b = smol_engine.generate([CONV], sampling=s)[0][0].text
    assert a == b and a
    many = smol_engine.generate([CONV], n=3, sampling=s)[0]
    assert [c.text for c in many] == [a] * 3


def test_seeded_sampling_is_reproducible(smol_engine):
    s = SamplingParams(temperature=0.9, max_tokens=16, seed=123)
    assert smol_engine.generate([CONV], sampling=s)[0][0].text == smol_engine.generate([CONV], sampling=s)[0][0].text


def test_stop_string_is_honored(smol_engine):
    s = SamplingParams(temperature=0, max_tokens=40)
    conv = [Message(role="user", content="Count from 1 to 20, separated by commas.")]
    full = smol_engine.generate([conv], sampling=s)[0][0].text
    assert "5" in full
    cut = smol_engine.generate([conv], sampling=s, stop=["5"])[0][0]
    assert cut.finish_reason == "stop" and cut.stop == "5"
    assert "5" not in cut.text and full.startswith(cut.text)


def test_prefix_continuation_starts_with_prefix(smol_engine):
    prefix = "Thought: The sea is"
    out = smol_engine.generate([CONV], sampling=SamplingParams(max_tokens=12), prefix=prefix)[0][0]
    assert out.text.startswith(prefix) and len(out.text) > len(prefix)
    # The prompt really ends with the prefix (continue_final_message), not a new turn.
    rendered = render_prompt(smol_engine.tokenizer, CONV, prefix)
    assert rendered.rstrip().endswith(prefix)


def test_token_counts(smol_engine):
    s = SamplingParams(temperature=0, max_tokens=5)
    out = smol_engine.generate([CONV, [Message(role="user", content="Hi")]], sampling=s)
    for conv, (c,) in zip([CONV, [Message(role="user", content="Hi")]], out):
        prompt = render_prompt(smol_engine.tokenizer, conv, None)
        expected = len(smol_engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert c.prompt_tokens == expected
    long = out[0][0]
    assert long.finish_reason == "length" and long.completion_tokens == 5
