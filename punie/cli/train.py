"""`punie train` and `punie fuse`: LoRA training with mlx-lm, and merging the adapter."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from punie.cli import app
from punie.cli.inputs import input_file
from punie.mlx.train.recipes import Recipe

console = Console()


@app.command("train")
def train_command(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML file with mlx-lm lora keys (flags override it)."
    ),
    model: str | None = typer.Option(None, "--model", help="Model folder; default: embedded."),
    data: str | None = typer.Option(None, "--data", help="Folder with train/valid.jsonl."),
    adapter_path: str | None = typer.Option(None, "--adapter-path", help="Output folder."),
    recipe: Recipe | None = typer.Option(None, "--recipe", help="punie (default) or seed."),
    answer_weight: float | None = typer.Option(
        None, "--answer-weight", help="Loss weight of answers from tool results (default 1)."
    ),
    fine_tune_type: str | None = typer.Option(None, "--fine-tune-type", help="lora|dora|full."),
    iters: int | None = typer.Option(None, "--iters", help="Optimizer steps in total."),
    learning_rate: float | None = typer.Option(None, "--learning-rate"),
    num_layers: int | None = typer.Option(None, "--num-layers", help="-1 for all layers."),
    rank: int | None = typer.Option(None, "--rank", help="LoRA rank."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    max_seq_length: int | None = typer.Option(None, "--max-seq-length"),
    save_every: int | None = typer.Option(None, "--save-every"),
    steps_per_eval: int | None = typer.Option(None, "--steps-per-eval"),
    steps_per_report: int | None = typer.Option(None, "--steps-per-report"),
    val_batches: int | None = typer.Option(None, "--val-batches"),
    seed: int | None = typer.Option(None, "--seed"),
    resume: bool | None = typer.Option(
        None, "--resume/--no-resume", help="Continue from the adapter folder's last checkpoint."
    ),
    fast_blas: bool | None = typer.Option(None, "--fast-blas/--no-fast-blas"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train an adapter with the loss on every assistant turn (or `--recipe seed`)."""
    from punie.mlx.train import load_config, train

    if config is not None:
        input_file(config, "--config")
    overrides = {
        "model": model,
        "data": data,
        "adapter_path": adapter_path,
        "recipe": recipe.value if recipe is not None else None,
        "answer_weight": answer_weight,
        "fine_tune_type": fine_tune_type,
        "iters": iters,
        "learning_rate": learning_rate,
        "num_layers": num_layers,
        "rank": rank,
        "batch_size": batch_size,
        "max_seq_length": max_seq_length,
        "save_every": save_every,
        "steps_per_eval": steps_per_eval,
        "steps_per_report": steps_per_report,
        "val_batches": val_batches,
        "seed": seed,
        "resume": resume,
        "fast_blas": fast_blas,
    }
    result = train(load_config(config, overrides), progress=progress)
    table = Table(title="training", show_header=False)
    for key, value in (
        ("adapter", result.adapter_dir),
        ("recipe", result.recipe),
        ("steps", f"{result.steps} (resumed from {result.resumed_from})"),
        ("train loss", _fmt(result.final_train_loss)),
        ("valid loss", _fmt(result.final_valid_loss)),
        ("tokens", f"{result.processed_tokens:,} processed, {result.trained_tokens:,} trained"),
        ("seconds", f"{result.seconds:.1f}"),
        ("BLAS", result.blas),
        ("curve", result.curve_png),
    ):
        table.add_row(key, str(value))
    console.print(table)


@app.command("fuse")
def fuse_command(
    adapter: Path = typer.Option(..., "--adapter", help="The adapter folder `punie train` wrote."),
    out: Path = typer.Option(..., "--out", help="The new model folder to write."),
    model: str | None = typer.Option(
        None, "--model", help="Base model; default: the one the adapter was trained on."
    ),
    dequantize: bool = typer.Option(False, "--dequantize", help="Write unquantized weights."),
) -> None:
    """Merge an adapter into its base model: a folder mlx-lm and `punie serve` load."""
    from punie.mlx.train.fuse import fuse

    folder = fuse(adapter, out, model=model, dequantize=dequantize)
    console.print(f"wrote fused model to {folder}", highlight=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
