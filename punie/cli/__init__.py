"""The `punie` command line: thin typer wrappers around functions a test can call too."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from punie.errors import PunieError
from punie.logs import configure_logging

app = typer.Typer(
    name="punie",
    help="A local-first coding agent that learns to use tools and to stop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root(
    log_json: bool = typer.Option(False, "--log-json", help="Log JSON lines instead of text."),
    log_level: str = typer.Option("WARNING", "--log-level", help="Lowest log level shown."),
) -> None:
    configure_logging(json=log_json, level=log_level)


def _register() -> None:
    # Each stage of the loop keeps its commands in its own module; importing one registers them.
    from punie.cli import data, doctor, evaluate, model, run, serve, train  # noqa: F401


def main() -> None:
    """Entry point: a PunieError becomes one red line and exit code 2."""
    _register()
    try:
        app()
    except PunieError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(2)
