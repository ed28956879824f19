"""The `punie` command line: thin typer wrappers around functions a test can call too."""

from __future__ import annotations

import sys

import structlog
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


def _one_line(message: str) -> None:
    err_console.print("[red]error:[/red] ", end="", markup=True, highlight=False)
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point: a PunieError (or a file system error) becomes one red line and exit code
    2; anything else one line naming it and exit code 1, never a traceback (the traceback is
    logged at DEBUG level)."""
    _register()
    try:
        app()
    except PunieError as exc:
        _one_line(str(exc))
        sys.exit(2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _one_line(f"{where}{exc.strerror or exc}")
        sys.exit(2)
    except Exception as exc:
        structlog.get_logger(__name__).debug("cli_crashed", exc_info=True)
        _one_line(f"internal error: {type(exc).__name__}: {str(exc)[:300]}")
        sys.exit(1)
