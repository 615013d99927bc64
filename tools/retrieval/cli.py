"""`tinyact index ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Build, search and serve retrieval indexes.", no_args_is_help=True)
