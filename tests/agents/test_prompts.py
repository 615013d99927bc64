"""Versioned system prompts: the current full prompt teaches answering with the variable."""

from __future__ import annotations

import re

import pytest

from tinyact import Agent, ReplayEngine
from tinyact.agents.prompts import PROMPT_VERSIONS, PROMPTS, render_system_prompt
from tinyact.errors import ConfigError
from tinyact.tools.base import Tool


def _final_answer_args(text: str) -> list[str]:
    examples = text.split("You can use these tools:")[0]
    return re.findall(r"^final_answer\((.*)\)$", examples, re.MULTILINE)


def test_full_prompt_examples_return_variables_not_retyped_numbers():
    text, version = render_system_prompt("full", [])
    assert version == "full-v2" == PROMPTS["full"].version
    args = _final_answer_args(text)
    assert args == ["result", "count"]  # never a number read off an observation
    assert all(not re.fullmatch(r"-?[\d.]+", a) for a in args)
    old, old_version = render_system_prompt("full-v1", [])  # pinned versions stay reproducible
    assert old_version == "full-v1" and _final_answer_args(old) == ["result", "3"]


def test_search_example_still_answers_from_the_documents():
    def search(query: str) -> str:
        """Search the corpus."""
        return ""

    search = Tool(search)
    text, _ = render_system_prompt("full", [search])
    assert _final_answer_args(text) == ["result", "count", '"Cincinnati"']


def test_every_version_renders_and_unknown_names_fail():
    for version in PROMPT_VERSIONS:
        assert render_system_prompt(version, [])[1] == version
    with pytest.raises(ConfigError, match="full-v1"):
        render_system_prompt("full-v9", [])


def test_a_run_records_the_pinned_version():
    engine = ReplayEngine(["Thought: go\nCode:\n```py\nfinal_answer(1)\n```"])
    result = Agent(engine, prompt="full-v1").run("task")
    assert result.trajectory.prompt_version == "full-v1" and result.answer == 1
    assert "final_answer(3)" in engine.calls[0]["conversations"][0][0].content
