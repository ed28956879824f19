"""`punie data ...`: convert, harvest, generate and mix training data."""

from __future__ import annotations

import typer

from punie.cli import app

data_app = typer.Typer(help="Build training data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
