"""Terminal output for every command: one error helper, one listing helper, one progress bar,
and the Ctrl-C of long jobs (finish what is in flight, then stop).

Imported by CLI modules and long jobs only (never by ``import tinyact``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from rich.console import Console

__all__ = ["console", "drain_on_interrupt", "err", "expected_failure", "fail", "print_records", "progress_bar", "tally"]

EXTRAS = {
    "torch": "models", "transformers": "models", "accelerate": "models", "gguf": "models", "safetensors": "models",
    "tokenizers": "models", "vllm": "vllm", "llama_cpp": "llamacpp", "faiss": "retrieval", "bm25s": "retrieval",
    "sentence_transformers": "retrieval", "Stemmer": "retrieval", "fastapi": "serve", "uvicorn": "serve",
    "sse_starlette": "serve", "openai": "serve", "trl": "train", "peft": "train", "datasets": "train",
    "docker": "docker", "sympy": "eval", "matplotlib": "eval", "math_verify": "eval", "psycopg": "postgres",
    "ray": "ray", "playwright": "test",
}
"""Top-level module -> the ``tinyact[extra]`` that installs it."""

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> Any:
    """Print one clear ``error:`` line to stderr and return the ``typer.Exit`` to raise.

    Example:
        >>> raise fail("unknown model 'x'")  # doctest: +SKIP
    """
    import typer

    from rich.markup import escape

    # escaped: messages hold brackets (``pip install 'tinyact[serve]'``) that are not markup
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code)


def expected_failure(e: BaseException) -> str | None:
    """The one line a command prints for a failure that is the environment's, not a bug; else None.

    A missing optional dependency (with the extra to install), a missing or
    unreadable file, an unreachable server, any ``TinyactError``.
    """
    from tinyact.errors import TinyactError

    if isinstance(e, TinyactError):
        return str(e)
    if isinstance(e, ModuleNotFoundError) and e.name:
        top = e.name.split(".")[0]
        extra = EXTRAS.get(top)
        hint = f"pip install 'tinyact[{extra}]'" if extra else f"pip install {top}"
        return f"this command needs the {top!r} package, which is not installed: {hint}"
    if isinstance(e, ImportError):  # an engine's own "X needs: pip install ..." message
        return str(e)
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return f"{e.strerror or type(e).__name__}: {e.filename}" if e.filename else str(e)
    if _unreachable(e):
        return f"cannot reach the server: {e}"
    return None


def _unreachable(e: BaseException) -> bool:
    names = {c.__module__.split(".")[0] + "." + c.__name__ for c in type(e).__mro__}
    return isinstance(e, ConnectionError) or bool(names & {
        "httpx.ConnectError", "httpx.ConnectTimeout", "openai.APIConnectionError", "requests.ConnectionError",
        "urllib.URLError",
    })


def print_records(records: list[dict[str, Any]], *, as_json: bool = False) -> None:
    """A listing: JSON with ``as_json``; a table on a terminal; else plain tab-separated
    lines under a header (never truncated, for scripts and pipes)."""
    import json

    if as_json:
        print(json.dumps(records, indent=2, default=str))
        return
    columns = list(records[0]) if records else []

    def cell(v: Any) -> str:
        return "-" if v is None else ("yes" if v is True else "no" if v is False else str(v))

    if console.is_terminal:
        from rich.table import Table

        table = Table(*columns)
        for r in records:
            table.add_row(*(cell(r[c]) for c in columns))
        console.print(table)
        return
    print("\t".join(columns))
    for r in records:
        print("\t".join(cell(r[c]) for c in columns))


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


_gave_up = False  # a second Ctrl-C in drain_on_interrupt gave up the work in flight


def exit_interrupted() -> NoReturn:
    """Say "interrupted" and exit 130: how a command ends on Ctrl-C.

    After a second Ctrl-C gave up the work in flight (``drain_on_interrupt``), the
    threads still running it (model calls: minutes on CPU) would hold the
    interpreter's exit until they finish; then the ``atexit`` clean-ups run (they
    stop servers and containers) and the process leaves without waiting for them.
    """
    import sys
    import threading

    err.print("interrupted")
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if _gave_up and busy:
        import atexit
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        os._exit(130)
    sys.exit(130)


@contextmanager
def drain_on_interrupt(what: str = "runs") -> Iterator[Callable[[], bool]]:
    """Ctrl-C for a long job that works on several items at once; yields ``stopping()``.

    The first SIGINT (Ctrl-C, or ``kill -INT PID`` for a job in the background)
    lets the items in flight finish and be saved while the job starts no new
    one (it checks ``stopping()``, and only when it has work left to start); at
    the end of the block the job then stops with ``KeyboardInterrupt``, so nothing
    after it runs on a half-done stage; if ``stopping()`` never answered True
    (Ctrl-C came once the last item was in flight), the job is whole and goes on.
    A second SIGINT raises ``KeyboardInterrupt`` at once: the job gives up what
    is in flight (lost, as with a kill; ``exit_interrupted()`` then exits
    without waiting for it). A rerun continues where it stopped.
    Outside the main thread, where signals cannot be caught, ``stopping()`` is
    always False.

    Example:
        >>> with drain_on_interrupt("questions") as stopping:  # doctest: +SKIP
        ...     while queue and not stopping():
        ...         ...
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hits = [0]

    def handler(signum: int, frame: Any) -> None:
        global _gave_up
        hits[0] += 1
        if hits[0] > 1:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _gave_up = True
            raise KeyboardInterrupt
        err.print(f"[yellow]stopping:[/] finishing the {what} in flight, starting no new ones "
                  "(Ctrl-C again to give them up)", highlight=False)

    held_back = [False]  # stopping() said True: some work was not started

    def stopping() -> bool:
        held_back[0] = held_back[0] or hits[0] > 0
        return held_back[0]

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGINT, previous)
    if hits[0] and not held_back[0]:  # Ctrl-C came after the last item had started: the job is whole
        err.print(f"finished: the last {what} were already in flight when Ctrl-C came", highlight=False)
    elif hits[0]:
        err.print(f"stopped: the finished {what} are saved; rerun the same command to continue", highlight=False)
        raise KeyboardInterrupt
