"""`punie data ...`: convert, harvest, generate and mix training data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from punie.cli import app
from punie.cli.inputs import input_file, output_file, output_folder

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

    local = Path(input)
    if local.exists() or local.is_symlink() or local.suffix in {".jsonl", ".json", ".parquet"}:
        input_file(local, "input", text=local.suffix != ".parquet")
    output_file(out, "--out")
    if report is not None:
        output_file(report, "--report")
    with _progress(f"convert {source.value}", limit) as advance:
        result = convert_file(
            source.value,
            input,
            out,
            report_path=report,
            limit=limit,
            on_row=advance,
        )
    from punie.cli.tables import conversion_table

    console.print(conversion_table(result))
    console.print(f"wrote {result.converted} conversations to {out}")


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[], None]]:
    """A transient bar for one piece of work; yields the callback that advances it by one."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


@data_app.command("generate")
def generate(
    repo: Annotated[Path, typer.Option("--repo", help="A Python source tree on disk.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Conversation JSONL to write.")],
    tasks_out: Annotated[
        Path | None, typer.Option("--tasks-out", help="Also write the eval TaskSpec JSONL.")
    ] = None,
    repo_name: Annotated[
        str | None, typer.Option("--repo-name", help="Name for the repository (default: folder).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most N tasks.")] = 400,
    seed: Annotated[int, typer.Option("--seed", help="Seed for choice and phrasing.")] = 0,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option("--snapshot-dir", help="Where to copy a tree grep cannot see in place."),
    ] = None,
    phrasing: Annotated[
        str,
        typer.Option("--phrasing", help="Question wording: train, or held_out for eval tasks."),
    ] = "train",
    extended_kinds: Annotated[
        bool,
        typer.Option(
            "--extended-kinds",
            help="Add the extended kinds (constants, class methods, recoveries); never held out.",
        ),
    ] = False,
) -> None:
    """Build grounded code tasks from a real repository, running the real tools."""
    from punie.data.generate.tasks import generate_to_files

    output_file(out, "--out")
    if tasks_out is not None:
        output_file(tasks_out, "--tasks-out")
    with _progress(f"generate {repo_name or repo.name}", limit) as advance:
        report = generate_to_files(
            repo,
            out,
            tasks_out,
            repo_name=repo_name,
            limit=limit,
            seed=seed,
            snapshot_dir=snapshot_dir,
            phrasing=phrasing,
            on_task=advance,
            extended_kinds=extended_kinds,
        )
    from punie.cli.tables import generation_table

    console.print(generation_table(report))
    console.print(f"wrote {report.total} conversations to {out} (repository {report.repo})")


@data_app.command("harvest")
def harvest(
    traces: Annotated[list[Path], typer.Argument(help="Traces JSONL file(s) of punie run.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Conversation JSONL to write.")],
    verified: Annotated[
        Path | None,
        typer.Option("--verified", help="Eval results JSONL: keep only runs that passed."),
    ] = None,
) -> None:
    """Turn answered runs from traces into training conversations."""
    from punie.data.harvest import harvest_traces

    for path in traces:
        input_file(path, "traces")
    if verified is not None:
        input_file(verified, "--verified")
    output_file(out, "--out")
    with _progress("harvest", None) as advance:
        report = harvest_traces(traces, out, verified=verified, on_run=advance)
    from punie.cli.tables import harvest_table

    console.print(harvest_table(report))
    console.print(f"wrote {report.kept} conversations to {out}")


@data_app.command("mix")
def mix(
    code: Annotated[list[Path], typer.Option("--code", help="Code-domain conversation JSONL.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for train/valid/test.jsonl.")],
    generic: Annotated[
        list[Path] | None, typer.Option("--generic", help="Generic conversation JSONL.")
    ] = None,
    ratio: Annotated[float, typer.Option("--ratio", help="Share of code-domain rows.")] = 0.7,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    model: Annotated[
        Path | None, typer.Option("--model", help="Model folder whose chat template validates.")
    ] = None,
    max_seq_length: Annotated[int, typer.Option("--max-seq-length", min=16)] = 2048,
    per_turn: Annotated[
        bool, typer.Option("--per-turn", help="One example per assistant turn (--mask-prompt).")
    ] = False,
    held_out_repo: Annotated[
        list[str] | None, typer.Option("--held-out-repo", help="Repository for the test split.")
    ] = None,
    valid_repo: Annotated[
        list[str] | None, typer.Option("--valid-repo", help="Repository for the valid split.")
    ] = None,
    balance: Annotated[
        str,
        typer.Option(
            "--balance",
            help="Reach the ratio by dropping rows of the larger domain (down) or repeating "
            "rows of the smaller one (over).",
        ),
    ] = "down",
) -> None:
    """Validate, split and mix conversations into mlx-lm chat data with a dataset card."""
    from punie.data.mix import MixConfig, mix_datasets

    for path in code:
        input_file(path, "--code")
    for path in generic or []:
        input_file(path, "--generic")
    output_folder(out, "--out")
    config = MixConfig(
        ratio=ratio,
        seed=seed,
        model_dir=model,
        max_seq_length=max_seq_length,
        per_turn=per_turn,
        held_out_repos=tuple(held_out_repo or ()),
        valid_repos=tuple(valid_repo or ()),
        balance=balance,
    )
    with _progress("validate and mix", None) as advance:
        card = mix_datasets(code, generic or [], out, config, on_item=advance)
    from punie.cli.tables import card_tables

    for table in card_tables(card):
        console.print(table)
    written = [f"{split}.jsonl" for split, rows in card.examples.items() if rows]
    console.print(f"wrote {', '.join(f'{out}/{name}' for name in written)} and card.json")
