"""Turn what a small model wrote into a CodeAction (thought + code), never raising.

The format is the agent-distillation paper's (smolagents 1.13 CodeAct):

    Thought: I need to multiply.
    Code:
    ```py
    print(12345 * 6789)
    ```<end_code>

Small models stray from it; each way they do is a named case below, tested in
tests/agents/test_parsing.py.
"""

from __future__ import annotations

import ast
import re

from tinyact.schema import CodeAction

__all__ = ["NO_CODE_ERROR", "parse_action", "strip_final_answer_redefinition"]

NO_CODE_ERROR = (
    "Your answer has no code. Write a thought, then 'Code:', then a ```py code block "
    "ending with ```<end_code>. Call final_answer(...) inside the code when you are done."
)

# ```py / ```python / ```python3 / bare ``` fences; the closing fence may be missing.
_FENCE = re.compile(r"```[ \t]*(?:py|python3?|Python)?[ \t]*\n(.*?)(?:\n?```|\Z)", re.DOTALL)
_CODE_TAG = re.compile(r"<code>\s*\n?(.*?)(?:</code>|\Z)", re.DOTALL)
_END_MARKERS = ("<end_code>", "<end_action>")
# Text the model may hallucinate after its action: cut there (the stop strings
# usually do, but a replayed or remote completion may not have honored them).
_HALLUCINATED = re.compile(r"\n\s*(?:Observation:|Calling tools:)", re.IGNORECASE)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # Windows / old Mac line endings
    m = _HALLUCINATED.search(text)
    if m:
        text = text[: m.start()]
    return text


def _thought_of(text: str, code_start: int) -> str:
    head = text[:code_start]
    head = re.sub(r"\n?\s*Code\s*:\s*$", "", head.rstrip())
    head = re.sub(r"^\s*Thought\s*:\s*", "", head.strip())
    return head.strip()


def _strip_markers(code: str) -> str:
    for marker in _END_MARKERS:
        code = code.replace(marker, "")
    return code.strip("\n").rstrip()


def _looks_like_python(code: str) -> bool:
    if not code.strip():
        return False
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    # A bare name or a plain sentence that happens to parse is not an action.
    return any(not isinstance(node, ast.Expr) or isinstance(node.value, ast.Call) for node in tree.body)


def strip_final_answer_redefinition(code: str) -> tuple[str, bool]:
    """Remove top-level ``def final_answer`` / ``final_answer = ...`` so the built-in stays.

    Small models copy the tool stub from the prompt into their code; if it ran,
    their later ``final_answer(x)`` would call their stub and the run would never end.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, False
    lines = code.split("\n")
    drop: list[tuple[int, int]] = []
    for node in tree.body:
        redefines = (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "final_answer"
        ) or (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "final_answer" for t in node.targets)
        )
        if redefines:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            drop.append((start - 1, node.end_lineno or node.lineno))
    if not drop:
        return code, False
    for start, end in reversed(drop):
        del lines[start:end]
    return "\n".join(lines).strip("\n"), True


def parse_action(text: str) -> CodeAction:
    """Parse a model output. Never raises: failures set ``parse_error``.

    Cases handled (each tested): fenced ```py / ```python / bare ``` blocks; <code>
    tags; a missing closing fence or missing <end_code>; several blocks (joined in
    order); text after the code; a thought with no code; a "Code:" section with no
    fence; final_answer redefined by the model; Windows line endings.
    """
    if not isinstance(text, str):
        return CodeAction(parse_error="The model output was not text.")
    text = _clean(text)
    blocks: list[str] = []
    first_start: int | None = None
    for m in _FENCE.finditer(text):
        block = _strip_markers(m.group(1))
        if block.strip():
            blocks.append(block)
            first_start = m.start() if first_start is None else first_start
    if not blocks:
        for m in _CODE_TAG.finditer(text):
            block = _strip_markers(m.group(1))
            if block.strip():
                blocks.append(block)
                first_start = m.start() if first_start is None else first_start
    if not blocks:
        # "Code:" followed by unfenced code.
        m = re.search(r"(?:^|\n)\s*Code\s*:\s*\n", text)
        if m:
            candidate = _strip_markers(text[m.end():])
            if _looks_like_python(candidate):
                blocks.append(candidate)
                first_start = m.start()
    if not blocks:
        return CodeAction(thought=_thought_of(text, len(text)), parse_error=NO_CODE_ERROR)
    code = "\n\n".join(blocks)
    code, _ = strip_final_answer_redefinition(code)
    thought = _thought_of(text, first_start or 0)
    if not code.strip():
        return CodeAction(thought=thought, blocks=blocks, parse_error=NO_CODE_ERROR)
    return CodeAction(thought=thought, code=code, blocks=blocks)
