"""One behavioural contract, three engines: transformers, vLLM (offline) and OpenAI-over-HTTP (a real vLLM server)."""

from __future__ import annotations

from tinyact.models.engines.transformers import render_prompt
from tinyact.schema import Message, SamplingParams

CONV = [Message(role="user", content="Write one short sentence about the sea.")]
COUNT = [Message(role="user", content="Count from 1 to 20, separated by commas.")]
HI = [Message(role="user", content="Hi")]


def test_sampled_completions_are_distinct(engine):
    (outs,) = engine.generate([CONV], n=4, sampling=SamplingParams(temperature=1.0, max_tokens=24, seed=0))
    texts = [c.text for c in outs]
    assert len(texts) == 4
    assert len(set(texts)) >= 3, texts


def test_greedy_is_reproducible_and_n_copies(engine):
    s = SamplingParams(temperature=0, max_tokens=20)
    a = engine.generate([CONV], sampling=s)[0][0].text
    b = engine.generate([CONV], sampling=s)[0][0].text
    assert a == b and a
    many = engine.generate([CONV], n=3, sampling=s)[0]
    assert [c.text for c in many] == [a] * 3


def test_seeded_sampling_is_reproducible(engine):
    s = SamplingParams(temperature=0.9, max_tokens=16, seed=123)
    assert engine.generate([CONV], sampling=s)[0][0].text == engine.generate([CONV], sampling=s)[0][0].text


def test_stop_string_is_honored(engine):
    s = SamplingParams(temperature=0, max_tokens=40)
    full = engine.generate([COUNT], sampling=s)[0][0].text
    assert "5" in full
    cut = engine.generate([COUNT], sampling=s, stop=["5"])[0][0]
    assert cut.finish_reason == "stop" and cut.stop == "5"
    assert "5" not in cut.text and full.startswith(cut.text)


def test_prefix_continuation_starts_with_prefix(engine, smol_tokenizer):
    prefix = "Thought: The sea is"
    out = engine.generate([CONV], sampling=SamplingParams(temperature=0, max_tokens=12), prefix=prefix)[0][0]
    assert out.text.startswith(prefix) and len(out.text) > len(prefix)
    # The prompt is the conversation with the prefix as an open assistant turn.
    rendered = render_prompt(smol_tokenizer, CONV, prefix)
    assert rendered.rstrip().endswith(prefix)
    assert out.prompt_tokens == len(smol_tokenizer(rendered, add_special_tokens=False)["input_ids"])


def test_token_counts(engine, smol_tokenizer):
    s = SamplingParams(temperature=0, max_tokens=5)
    out = engine.generate([CONV, HI], sampling=s)
    for conv, (c,) in zip([CONV, HI], out):
        prompt = render_prompt(smol_tokenizer, conv, None)
        assert c.prompt_tokens == len(smol_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    long = out[0][0]
    assert long.finish_reason == "length" and long.completion_tokens == 5


def test_batch_keeps_order_and_mixes_prefixes(engine):
    convs = [CONV, COUNT, HI, CONV]
    prefixes = [None, "1, 2, 3,", None, "The sea"]
    s = SamplingParams(temperature=0.8, max_tokens=8, seed=1)
    out = engine.generate(convs, n=2, sampling=s, prefix=prefixes)
    assert [len(row) for row in out] == [2, 2, 2, 2]
    for row, prefix in zip(out, prefixes):
        for c in row:
            assert c.text.startswith(prefix or "")
            assert c.finish_reason in ("length", "eos") and 0 < c.completion_tokens <= 8
    # Each conversation got its own answer, in order: greedy alone == greedy in the batch.
    greedy = SamplingParams(temperature=0, max_tokens=8)
    alone = engine.generate([COUNT], sampling=greedy, prefix="1, 2, 3,")[0][0].text
    batched = engine.generate(convs, sampling=greedy, prefix=prefixes)
    assert batched[1][0].text == alone
