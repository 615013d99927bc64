"""parse_action on what small models actually write: one named case per failure mode."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tinyact.agents.parsing import NO_CODE_ERROR, parse_action


def test_canonical_format():
    a = parse_action("Thought: multiply\nCode:\n```py\nprint(6*7)\n```<end_code>")
    assert a.ok and a.thought == "multiply" and a.code == "print(6*7)"


def test_python_fence():
    assert parse_action("Thought: t\n```python\nx = 1\n```").code == "x = 1"


def test_bare_fence():
    assert parse_action("Thought: t\nCode:\n```\nx = 2\n```").code == "x = 2"


def test_code_tags():
    a = parse_action("Thought: t\n<code>\ny = 3\n</code>")
    assert a.ok and a.code == "y = 3"


def test_missing_closing_fence():
    a = parse_action("Thought: t\nCode:\n```py\nz = 4\nprint(z)")
    assert a.code == "z = 4\nprint(z)"


def test_end_code_inside_unclosed_block():
    assert parse_action("Thought: t\n```py\nprint(1)<end_code>").code == "print(1)"


def test_several_blocks_run_in_order():
    a = parse_action("Thought: t\n```py\na = 1\n```\nthen\n```py\nprint(a + 1)\n```")
    assert a.blocks == ["a = 1", "print(a + 1)"] and a.code == "a = 1\n\nprint(a + 1)"


def test_text_after_code_is_ignored():
    a = parse_action("Thought: t\n```py\nprint(1)\n```\nThis prints one. I hope it helps!")
    assert a.code == "print(1)"


def test_hallucinated_observation_is_cut():
    a = parse_action("Thought: t\n```py\nprint(1)\n```\nObservation:\n1\n```py\nfinal_answer(99)\n```")
    assert a.code == "print(1)"


def test_thought_without_code_is_an_error_asking_for_code():
    a = parse_action("Thought: I think the answer is 42.")
    assert not a.ok and a.parse_error == NO_CODE_ERROR and a.thought == "I think the answer is 42."


def test_unfenced_code_after_code_label():
    a = parse_action("Thought: t\nCode:\nresult = 2 ** 10\nprint(result)")
    assert a.ok and a.code == "result = 2 ** 10\nprint(result)"


def test_prose_after_code_label_is_not_code():
    assert not parse_action("Thought: t\nCode:\nI will now compute it").ok


def test_final_answer_redefinition_is_removed():
    a = parse_action(
        "Thought: t\n```py\ndef final_answer(answer):\n    return answer\n\nfinal_answer(5)\n```"
    )
    assert a.code == "final_answer(5)"
    assert parse_action("```py\nfinal_answer = print\nfinal_answer(1)\n```").code == "final_answer(1)"


def test_windows_line_endings():
    a = parse_action("Thought: t\r\nCode:\r\n```py\r\nprint(1)\r\n```<end_code>\r\n")
    assert a.code == "print(1)" and "\r" not in a.thought


def test_json_fence_is_not_code():
    assert not parse_action('Thought: t\n```json\n{"a": 1}\n```').ok


def test_empty_block_is_an_error():
    assert not parse_action("Thought: t\n```py\n\n```").ok


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text):
    a = parse_action(text)
    assert a.ok or a.parse_error


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["```", "```py\n", "<code>", "</code>", "Code:\n", "\r\n", "Thought:", "x=1\n",
                                  "<end_code>", "Observation:", "def final_answer(a):\n", " "]), max_size=12))
def test_never_raises_on_format_fragments(parts):
    a = parse_action("".join(parts))
    assert a.ok or a.parse_error
