"""The loss mask on real tokenizers: exactly the assistant turns (and their end-of-turn token) are unmasked."""

from __future__ import annotations

import pytest

from tinyact.distill import to_sft_example, tokenize_conversation
from tinyact.distill.sft_data import student_system_prompt
from tinyact.schema import CodeAction, ExecResult, Step, Trajectory

ZEPHYR_LIKE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _conversation() -> list[dict[str, str]]:
    steps = [
        Step(index=0, model_output="Thought: count with code.\nCode:\n```py\nprint('banana'.count('a'))\n```",
             action=CodeAction(thought="count", code="print('banana'.count('a'))"), observation="3",
             result=ExecResult(stdout="3\n")),
        Step(index=1, model_output="Thought: done.\nCode:\n```py\nfinal_answer(3)\n```",
             action=CodeAction(thought="done", code="final_answer(3)"), observation="3",
             result=ExecResult(called_final_answer=True, final_answer=3)),
    ]
    t = Trajectory(task="How many a in 'banana'?", steps=steps, final_answer=3, end_reason="final_answer")
    return to_sft_example(t, student_system_prompt("short"))["messages"]


def _runs(ids: list[int], mask: list[int]) -> tuple[list[list[int]], list[list[int]]]:
    on, off, cur, state = [], [], [], None
    for i, m in zip(ids, mask):
        if m != state and cur:
            (on if state else off).append(cur)
            cur = []
        state = m
        cur.append(i)
    if cur:
        (on if state else off).append(cur)
    return on, off


def _tokenizers(smollm2_path):
    from transformers import AutoTokenizer

    from tinyact.models.catalog import is_prepared, model_path

    yield "smollm2-135m", AutoTokenizer.from_pretrained(smollm2_path)
    zephyr = AutoTokenizer.from_pretrained(smollm2_path)
    zephyr.chat_template = ZEPHYR_LIKE
    yield "zephyr-like template", zephyr
    for name in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        if is_prepared(name):
            yield name, AutoTokenizer.from_pretrained(model_path(name))


def test_only_assistant_tokens_are_unmasked(smollm2_path):
    msgs = _conversation()
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[3]["content"] == "Observation:\n3" and msgs[4]["content"].endswith("```<end_code>")
    assistant = [m["content"] for m in msgs if m["role"] == "assistant"]
    others = [m["content"] for m in msgs if m["role"] != "assistant"]
    seen = []
    for name, tok in _tokenizers(smollm2_path):
        seen.append(name)
        enc = tokenize_conversation(tok, msgs)
        ids, mask = enc["input_ids"], enc["assistant_masks"]
        assert len(ids) == len(mask) and set(mask) == {0, 1}
        assert tok.decode(ids) == tok.apply_chat_template(msgs, tokenize=False), name
        on, off = _runs(ids, mask)
        assert len(on) == len(assistant), name
        for run, content in zip(on, assistant):
            text = tok.decode(run)
            assert text.startswith(content), (name, text)
            end = text[len(content):]
            # what follows the content is the template's end-of-turn marker only
            assert end.strip() and end.strip() in ("<|im_end|>", "</s>", tok.eos_token), (name, end)
        masked = "".join(tok.decode(run) for run in off)
        for content in others:
            assert content in masked, name  # system prompt, task and observations are all masked
        for content in assistant:
            assert content not in masked, name
        # the generation prompt ("<|im_start|>assistant\n") is masked: the student is not taught to write it
        assert all(not tok.decode(run).lstrip().startswith("<|") for run in on), name
    assert "smollm2-135m" in seen


def test_truncation_keeps_the_start(smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    full = tokenize_conversation(tok, _conversation())
    cut = tokenize_conversation(tok, _conversation(), max_length=20)
    assert cut["input_ids"] == full["input_ids"][:20] and cut["assistant_masks"] == full["assistant_masks"][:20]


def test_template_that_rewrites_history_is_refused(smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    # a template that renders only the last message: prefixes are not prefixes of the whole
    tok.chat_template = "{{ messages[-1]['content'] }}"
    with pytest.raises(ValueError, match="prefix"):
        tokenize_conversation(tok, _conversation())
