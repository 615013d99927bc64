"""Render a chat template (a GGUF's ``tokenizer.chat_template``) as transformers does.

The llama.cpp engine reads the template from the GGUF file and renders it here,
with the same Jinja environment and the same ``continue_final_message`` rule
as ``tokenizer.apply_chat_template``, so that both engines build the same prompt
text for the same conversation (and the same first-thought prefix).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tinyact.schema import Message

__all__ = ["CHATML", "ChatTemplate"]

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""The template used when a GGUF carries none (llama.cpp's own default is ChatML too)."""


class ChatTemplate:
    """A compiled chat template with its special tokens.

    Args:
        source: the Jinja template text.
        bos_token, eos_token: the texts of the model's BOS/EOS tokens (templates use them).
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        import jinja2
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise jinja2.exceptions.TemplateError(message)

        def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
                   separators: Any = None, sort_keys: bool = False) -> str:  # fmt: skip
            return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.source = source
        self.template = env.from_string(source)
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: Sequence[Message], prefix: str | None = None) -> str:
        """The prompt text of ``messages``; with ``prefix``, an open assistant turn ending in it.

        With a prefix this is transformers' ``continue_final_message=True``: the
        conversation is rendered with the prefix as the last assistant message,
        and the text is cut right after the prefix (templates that strip
        whitespace keep the stripped form).
        """
        from tinyact.errors import ConfigError

        msgs = [m.model_dump() for m in messages]
        if prefix is None:
            return self._render(msgs, add_generation_prompt=True)
        msgs.append({"role": "assistant", "content": prefix})
        text = self._render(msgs, add_generation_prompt=False)
        if prefix.strip() not in text:
            raise ConfigError("the chat template dropped the assistant prefix; it cannot be continued")
        at = text.rindex(prefix.strip())
        if text[at : at + len(prefix.lstrip())] == prefix.lstrip():
            return text[: at + len(prefix.lstrip())]
        return text[: at + len(prefix.strip())]

    def _render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
        return self.template.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )
