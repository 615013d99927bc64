"""Terminal output for every command: one error helper and one progress bar.

Imported by CLI modules and long jobs only (never by ``import tinyact``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

__all__ = ["console", "err", "fail", "progress_bar", "tally"]

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> Any:
    """Print one clear ``error:`` line to stderr and return the ``typer.Exit`` to raise.

    Example:
        >>> raise fail("unknown model 'x'")  # doctest: +SKIP
    """
    import typer

    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


def progress_bar(*extra: Any, console: Console = err, transient: bool = False) -> Any:
    """A rich ``Progress`` with the columns every tinyact job shows: what, bar, done/total, extra, elapsed, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=transient,
    )


@contextmanager
def tally(
    label: str, total: int, *, done: int = 0, score: str = "acc",
    enabled: bool | Callable[[int, int, int], None] = True,
) -> Iterator[Callable[[bool], None]]:
    """A one-row progress bar for jobs that grade as they go; yields ``advance(correct)``.

    ``score="acc"`` shows the running accuracy of this session's items,
    ``score="solved"`` the count solved. ``enabled`` may be a callback
    ``(done, total, solved) -> None`` instead of a bar, or False for nothing.
    """
    state = {"done": done, "new": 0, "solved": 0}

    def text() -> str:
        if score == "acc":
            return f"{state['solved'] / state['new']:.3f}" if state["new"] else "-"
        return str(state["solved"])

    if enabled is True:
        from rich.progress import TextColumn

        bar = progress_bar(TextColumn(f"{score} {{task.fields[score]}}"))
        with bar:
            task = bar.add_task(label, total=total, completed=done, score=text())

            def advance(correct: bool) -> None:
                state["new"] += 1
                state["solved"] += int(correct)
                bar.update(task, advance=1, score=text())

            yield advance
        return

    def advance_quietly(correct: bool) -> None:
        state["done"] += 1
        state["new"] += 1
        state["solved"] += int(correct)
        if callable(enabled):
            enabled(state["done"], total, state["solved"])

    yield advance_quietly
