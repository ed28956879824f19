"""`punie model ...` and `punie serve`: local models and the mlx-lm server."""

from __future__ import annotations

import typer

from punie.cli import app

model_app = typer.Typer(help="Import and prepare local models.", no_args_is_help=True)
app.add_typer(model_app, name="model")
