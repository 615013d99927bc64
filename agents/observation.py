"""What the model sees after its action: the observation text, in the paper's format."""

from __future__ import annotations

import json
from typing import Any

from tinyact.schema import ExecResult

__all__ = ["RETRY_HINT", "format_observation", "format_parse_error", "observation_message"]

RETRY_HINT = (
    "Now let's retry: take care not to repeat previous errors! "
    "If you have retried several times, try a completely different approach."
)


def _answer_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def format_observation(result: ExecResult) -> str:
    """Execution logs + last output, or the error and an invitation to retry."""
    logs = result.stdout
    if result.stderr.strip() and result.error is None:
        logs = f"{logs}{'' if logs.endswith(chr(10)) or not logs else chr(10)}{result.stderr}"
    parts = [f"Execution logs:\n{logs.rstrip()}"]
    if result.error is not None:
        parts.append(f"Error:\n{result.error.type}: {result.error.message}".rstrip())
        parts.append(RETRY_HINT)
    elif result.called_final_answer:
        parts.append(f"Last output from code snippet:\n{_answer_text(result.final_answer)}")
    else:
        parts.append(f"Last output from code snippet:\n{result.value if result.value is not None else 'None'}")
    return "\n".join(parts)


def format_parse_error(message: str) -> str:
    return f"Error:\n{message}\n{RETRY_HINT}"


def observation_message(observation: str) -> str:
    """The user turn that carries an observation."""
    return f"Observation:\n{observation}"
