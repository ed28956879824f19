"""`punie serve`: an mlx-lm server on 127.0.0.1 for as long as you need it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from punie.cli import app
from punie.mlx.server import RunningServer, serve_until_interrupted

console = Console()


def _show(server: RunningServer) -> None:
    console.print(f"[bold green]Serving[/] {server.model}", highlight=False)
    if server.adapter is not None:
        console.print(f"adapter:       {server.adapter}", highlight=False)
    console.print(f"base URL:      {server.base_url}", highlight=False)
    console.print(f"request model: {server.request_model}", highlight=False)
    console.print(f"BLAS:          {server.blas.name}", highlight=False)
    console.print(f"server pid:    {server.pid}", highlight=False)
    console.print(f"server log:    {server.log_path}", highlight=False)
    console.print(f"run with:      {run_line(server)}", highlight=False, soft_wrap=True)
    console.print("Press Ctrl-C to stop.", style="dim")
    console.file.flush()


def run_line(server: RunningServer) -> str:
    """The `punie run` command that asks this server (its profile comes from GET /models)."""
    return f"punie run --base-url {server.base_url} --repo . 'your question'"


@app.command("serve")
def serve_command(
    model: str | None = typer.Option(
        None, "--model", help="An mlx-lm model folder or Hugging Face id; default: embedded model."
    ),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder to apply."),
    port: int | None = typer.Option(None, "--port", help="TCP port on 127.0.0.1; default: free."),
    fast_blas: bool = typer.Option(
        True, "--fast-blas/--no-fast-blas", help="Preload OpenBLAS or MKL on Linux CPU."
    ),
    startup_timeout: float = typer.Option(
        180.0, "--startup-timeout", help="Seconds to wait for the server to answer."
    ),
) -> None:
    """Serve a model with `mlx_lm server` until Ctrl-C; clients send the printed request model."""
    if model is None:
        from punie.mlx.embedded import embedded_model_dir

        model = str(embedded_model_dir())
    serve_until_interrupted(
        model,
        adapter=adapter,
        port=port,
        fast_blas=fast_blas,
        startup_timeout_s=startup_timeout,
        on_ready=_show,
    )
    console.print("Server stopped.", style="dim")
