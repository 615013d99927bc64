"""`tinyact sandbox ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect the code sandbox.", no_args_is_help=True)
