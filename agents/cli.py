"""``tinyact run``: the agent on one task, step by step."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tinyact.console import console, err, fail
from tinyact.models.engines import ENGINE_HELP
from tinyact.tools.retrieval.cli import IndexOption, search_tools


def run(
    task: Annotated[str, typer.Argument(help="What the agent should do.")],
    model: Annotated[Optional[str], typer.Option(help="Catalog name or model folder.")] = None,
    engine: Annotated[str, typer.Option(help=ENGINE_HELP)] = "auto",
    max_steps: Annotated[int, typer.Option(min=1)] = 5,
    samples: Annotated[int, typer.Option(help="k candidate actions per step (self-consistency).", min=1)] = 1,
    temperature: Annotated[Optional[float], typer.Option(min=0.0)] = None,
    prompt: Annotated[str, typer.Option(help="full | short, or a pinned version id (full-v1)")] = "full",
    index: IndexOption = None,
    show_steps: Annotated[bool, typer.Option(help="Show each step as it happens.")] = True,
    save: Annotated[Optional[str], typer.Option(help="Append the trajectory to this JSONL file.")] = None,
    approve: Annotated[bool, typer.Option(help="Ask before running each code action.")] = False,
    sandbox: Annotated[str, typer.Option(help="auto | process | docker")] = "auto",
    tokens: Annotated[Optional[bool], typer.Option(
        "--tokens/--no-tokens", help="Show the model's text as it is generated (default: on a terminal).")] = None,
) -> None:
    """Run the CodeAct agent on a task; shows each step, then the answer."""
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    from tinyact.agents import Agent, AgentResult, Token
    from tinyact.agents.trajectory import append_jsonl
    from tinyact.errors import TinyactError
    from tinyact.models.catalog import default_model

    try:
        tools = search_tools(index)
    except TinyactError as e:
        raise fail(str(e)) from None

    def ask(request: dict) -> object:
        console.print(Panel(Syntax(request["code"], "python"), title=f"step {request['step']}: run this code?"))
        answer = typer.prompt("approve [y] / reject [n] / edit [e]", default="y")
        if answer.lower().startswith("e"):
            return {"action": "edit", "code": typer.edit(request["code"]) or request["code"]}
        return "approve" if answer.lower().startswith("y") else "reject"

    try:
        agent = Agent(
            model or default_model(), tools=tools, sandbox=sandbox, engine=engine, max_steps=max_steps,
            samples=samples, temperature=temperature, prompt=prompt, approve_code=approve,
        )
        result = None
        live = show_steps and (tokens if tokens is not None else console.is_terminal)
        streaming = False
        with agent:
            for item in agent.stream(task, approve=ask if approve else None, tokens=live):
                if isinstance(item, Token):
                    if not streaming and item.of > 1:
                        console.print(f"[dim](candidate {item.candidate} of {item.of} while it is generated)[/]")
                    console.print(item.text, end="", style="dim", markup=False, highlight=False)
                    streaming = True
                    continue
                if streaming:
                    console.print()
                    streaming = False
                if isinstance(item, AgentResult):
                    result = item
                elif show_steps:
                    body = f"[bold]Thought:[/] {item.action.thought}" if item.action.thought else ""
                    console.print(Panel(body or "(no thought)", title=f"step {item.index}", title_align="left"))
                    if item.action.code:
                        console.print(Syntax(item.action.code, "python", line_numbers=False))
                    style = "red" if item.error else "green"
                    console.print(
                        Panel(Text(item.observation), title="observation", border_style=style, title_align="left")
                    )
    except TinyactError as e:
        raise fail(str(e)) from None
    assert result is not None
    if save:
        append_jsonl(save, [result.trajectory])
    t = result.trajectory
    err.print(f"[dim]{t.end_reason} after {len(t.steps)} step(s), {t.usage.total_tokens} tokens, {t.seconds:.1f}s[/]")
    console.print(f"[bold]Answer:[/] {result.answer}")
