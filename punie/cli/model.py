"""`punie model ...` and `punie serve`: local models and the mlx-lm server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from punie.cli import app

model_app = typer.Typer(help="Import and prepare local models.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("import-gguf")
def import_gguf_command(
    file: Annotated[Path, typer.Argument(help="The .gguf model file (llama or qwen2).")],
    out: Annotated[Path, typer.Option("--out", help="The mlx-lm model folder to write.")],
) -> None:
    """Convert a GGUF model into an mlx-lm folder (weights, config, tokenizer, chat template)."""
    from punie.mlx.gguf_import import import_gguf

    folder = import_gguf(file, out)
    typer.echo(str(folder))


@model_app.command("embedded")
def embedded_command() -> None:
    """Prepare the embedded SmolLM2-135M-Instruct model (once) and print its folder."""
    from punie.mlx.embedded import embedded_model_dir

    typer.echo(str(embedded_model_dir()))
