"""Versioned system prompts. Each version is a template file; the version a run
used is recorded in its trajectory, so results can be traced to exact prompts."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Literal

from tinyact.errors import ConfigError
from tinyact.tools.base import Tool

__all__ = ["DEFAULT_PROMPT", "FINAL_ANSWER_PROMPT", "PROMPTS", "PROMPT_VERSIONS", "PromptSpec", "render_system_prompt"]

PromptName = Literal["full", "short"]


@dataclass(frozen=True)
class PromptSpec:
    name: str
    version: str
    file: str


PROMPT_VERSIONS: dict[str, PromptSpec] = {
    "full-v1": PromptSpec("full", "full-v1", "full_v1.txt"),
    # v2: the worked examples answer with the variable (final_answer(count)), not a
    # retyped observed value; v1 taught retyping and the 0.5B model then made up digits.
    "full-v2": PromptSpec("full", "full-v2", "full_v2.txt"),
    "short-v1": PromptSpec("short", "short-v1", "short_v1.txt"),
}
"""Every prompt version ever shipped, so an old run can be reproduced by its version id."""
PROMPTS: dict[str, PromptSpec] = {
    "full": PROMPT_VERSIONS["full-v2"],
    "short": PROMPT_VERSIONS["short-v1"],
}
"""The current version of each prompt name."""
# Chosen by measurement (bench/agent.py, README): qwen2.5-coder-0.5b follows the
# format only with worked examples.
DEFAULT_PROMPT = "full"

FINAL_ANSWER_PROMPT = (
    "You have used all your steps. Based on everything above, give the final answer "
    "to the task now, on one line, as: Final answer: <answer>"
)


def _read(file: str) -> str:
    return resources.files(__name__).joinpath(file).read_text()


def render_system_prompt(prompt: str, tools: list[Tool]) -> tuple[str, str]:
    """Return (system prompt text, prompt version) for a prompt name ("full": its current
    version) or a pinned version id ("full-v1") and the tools."""
    spec = PROMPTS.get(prompt) or PROMPT_VERSIONS.get(prompt)
    if spec is None:
        raise ConfigError(f"prompt must be one of {', '.join([*PROMPTS, *PROMPT_VERSIONS])}, got {prompt!r}")
    stubs = "\n".join(t.to_prompt() for t in tools)
    search_example = _read("search_example_v1.txt") if any(t.name == "search" for t in tools) else ""
    text = Template(_read(spec.file)).safe_substitute(tools=stubs, search_example=search_example)
    return text.replace("```py\n\ndef final_answer", "```py\ndef final_answer"), spec.version
