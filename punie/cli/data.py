"""`punie data ...`: convert, harvest, generate and mix training data."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from punie.cli import app

data_app = typer.Typer(help="Build training data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


class PublicSource(StrEnum):
    """The public data sets `convert` reads."""

    glaive = "glaive"
    when2call = "when2call"
    hermes = "hermes"
    xlam = "xlam"


@data_app.command("convert")
def convert(
    source: Annotated[PublicSource, typer.Argument(help="Which public data set the input holds.")],
    input: Annotated[str, typer.Argument(help="A .jsonl/.json/.parquet file, or hub owner/name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Conversation JSONL to write.")],
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write the report as JSON.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Read at most N rows.")
    ] = None,
) -> None:
    """Convert public tool-calling rows into Conversation JSONL, with a report of skipped rows."""
    from punie.data import convert_file

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"convert {source.value}", total=limit)
        result = convert_file(
            source.value,
            input,
            out,
            report_path=report,
            limit=limit,
            on_row=lambda: progress.advance(task),
        )
    console.print(result.table())
    console.print(f"wrote {result.converted} conversations to {out}")
