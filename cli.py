"""The ``tinyact`` command. Each room owns its commands; this file only puts them together.

    models/cli.py    models list|prepare|path, chat, serve-model
    agents/cli.py    run
    serve/cli.py     serve, view
    sandbox/cli.py   sandbox doctor|bench
    tools/retrieval/cli.py   index build|search|serve|info
    eval/cli.py      eval run|report|list|export-corpus
    distill/cli.py   distill prefixes|collect|filter|sft-data|train|export|all
"""

from __future__ import annotations

import sys

import typer

from tinyact.agents.cli import run
from tinyact.console import exit_interrupted, expected_failure, fail
from tinyact.distill.cli import app as distill_app
from tinyact.eval.cli import app as eval_app
from tinyact.models.cli import app as models_app
from tinyact.models.cli import chat, serve_model
from tinyact.sandbox.cli import app as sandbox_app
from tinyact.serve.cli import serve, view
from tinyact.tools.retrieval.cli import app as index_app

app = typer.Typer(
    name="tinyact",
    help="CodeAct agents for small language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(models_app, name="models")
app.command()(chat)
app.command()(run)
app.command()(serve)
app.command("serve-model")(serve_model)
app.command()(view)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")
app.add_typer(distill_app, name="distill")


def main() -> None:
    """Run the command; an expected failure any command lets through (a missing extra,
    a missing file, an unreachable server) is one ``error:`` line and exit code 1."""
    try:
        app()
    except SystemExit as e:
        if e.code == 130:  # Ctrl-C: typer turns KeyboardInterrupt into exit 130
            exit_interrupted()
        raise
    except KeyboardInterrupt:
        exit_interrupted()
    except Exception as e:
        message = expected_failure(e)
        if message is None:
            raise  # a bug: keep the traceback
        fail(message)
        sys.exit(1)


if __name__ == "__main__":
    main()
