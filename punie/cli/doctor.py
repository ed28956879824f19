"""`punie doctor`: what a user pastes into a bug report (machine, BLAS, model, sandbox, adapter).

Offline and fast: the BLAS verdict comes from the cache (measured once, a few seconds, on a
machine that has none yet; `--remeasure` redoes it), and the embedded model is looked at, not
prepared.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

import platformdirs
import typer
from rich.console import Console
from rich.table import Table

from punie.cli import app
from punie.errors import ModelImportError


def blas_report(*, remeasure: bool = False) -> dict[str, Any]:
    """The BLAS verdict (every candidate's GFLOP/s and kernel), or why there is none to make."""
    from punie.mlx.blas import ACCELERATE_NAME, blas_override, blas_verdict

    if sys.platform == "darwin":
        return {"chosen": "accelerate", "name": ACCELERATE_NAME, "candidates": []}
    if not sys.platform.startswith("linux"):
        return {"chosen": "reference", "name": "reference", "candidates": []}
    verdict = blas_verdict(remeasure=remeasure, override=blas_override())
    return {**verdict.to_json(), "name": verdict.chosen.name, "library": verdict.chosen.library}


# Measured on a 2-core Intel Xeon (family 6 model 207, AVX-512), 2048² float32 matmul medians:
# MKL 315 GFLOP/s, the ngsolve-openblas wheel 249 (Cooperlake kernels); on AMD EPYC MKL lost.
MKL_HINT = (
    "on Intel CPUs MKL measured 1.27x the OpenBLAS wheel (2048² matmul): "
    "`uv sync --extra mkl` adds it as a candidate, then `punie doctor --remeasure`"
)


def blas_hint(vendor: str | None, blas: dict[str, Any]) -> str | None:
    """What could make MLX faster here, where Punie knows of something not installed."""
    keys = {c["key"] for c in blas.get("candidates", [])}
    if vendor == "GenuineIntel" and keys and "mkl" not in keys and not blas.get("override"):
        return MKL_HINT
    return None


def model_report() -> dict[str, Any]:
    """The embedded model: whether it is prepared, and where (without preparing it)."""
    from punie.mlx import embedded

    try:
        gguf = embedded.embedded_gguf_path()
        # The same folder `embedded_model_dir()` returns, computed without importing the GGUF.
        folder = (
            Path(platformdirs.user_cache_dir("punie"))
            / "models"
            / f"{embedded.EMBEDDED_MODEL_ID}-{embedded._version_marker()}"
        )
    except ModelImportError as exc:
        return {"id": embedded.EMBEDDED_MODEL_ID, "installed": False, "error": str(exc)}
    return {
        "id": embedded.EMBEDDED_MODEL_ID,
        "installed": True,
        "gguf": str(gguf),
        "folder": str(folder),
        "prepared": (folder / "config.json").is_file(),
    }


def sandbox_report() -> dict[str, Any]:
    from punie.runtime.tools.sandbox import detect_sandbox

    sandbox = detect_sandbox()
    return {"kind": sandbox.kind, "available": sandbox.available, "reason": sandbox.reason}


def adapter_report(model: dict[str, Any]) -> dict[str, Any]:
    """The adapter `punie run` would serve with the embedded model (the newest trained one)."""
    from punie.mlx.adapters import latest_adapter

    adapter = latest_adapter(Path(model["folder"])) if model.get("folder") else None
    return {"adapter": str(adapter) if adapter else None}


def doctor_report(*, remeasure: bool = False) -> dict[str, Any]:
    """Everything `punie doctor` shows, JSON-ready."""
    from punie.mlx import machine

    model = model_report()
    blas = blas_report(remeasure=remeasure)
    blas["hint"] = blas_hint(machine.cpu_vendor(), blas)
    return {
        "punie": _version("punie"),
        "python": sys.version.split()[0],
        "mlx": _version("mlx"),
        "mlx_lm": _version("mlx-lm"),
        "machine": machine.describe(),
        "blas": blas,
        "model": model,
        "sandbox": sandbox_report(),
        "run_adapter": adapter_report(model),
    }


@app.command("doctor")
def doctor_command(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    remeasure: bool = typer.Option(False, "--remeasure", help="Measure every BLAS again."),
) -> None:
    """Show this machine, the BLAS MLX uses, the model, the sandbox: paste it into a bug report."""
    report = doctor_report(remeasure=remeasure)
    if json_output:
        typer.echo(json.dumps(report, indent=2))
        return
    _render(report)


def _render(report: dict[str, Any]) -> None:
    from punie.mlx.blas_probe import kernel_summary

    console = Console(highlight=False)
    m = report["machine"]
    memory = f"{m['memory_bytes'] / 2**30:.1f} GiB" if m.get("memory_bytes") else "?"
    load = " ".join(f"{x:.2f}" for x in m["load_average"]) if m.get("load_average") else "?"
    versions = f"python {report['python']}  mlx {report['mlx']}  mlx-lm {report['mlx_lm']}"
    console.print(f"[bold]punie[/] {report['punie']}  {versions}")
    console.print(f"machine   {m['cpu_signature']}, {m['cpus']} CPUs, {memory}, load {load}")
    console.print(f"          {m['platform']}")
    blas = report["blas"]
    measured = f" (measured {blas['measured_at']}{', cached' if blas.get('cached') else ''})"
    console.print(f"BLAS      [bold]{blas['name']}[/]{measured if blas['candidates'] else ''}")
    if blas.get("override"):
        console.print(f"          forced by PUNIE_BLAS={blas['override']}")
    if blas["candidates"]:
        table = Table("candidate", "GFLOP/s", "verdict", "kernel / library")
        for c in blas["candidates"]:
            mark = "[green]chosen[/]" if c["key"] == blas["chosen"] else ""
            verdict = mark if c["ok"] else f"[red]refused[/]: {c['reason']}"
            gflops = f"{c['gflops']:.1f}" if c["gflops"] is not None else "-"
            detail = f"{kernel_summary(c['kernel'])}\n{c['library'] or ''}".strip()
            table.add_row(c["key"], gflops, verdict, detail)
        console.print(table)
    if blas.get("hint"):
        console.print(f"          [yellow]hint[/]: {blas['hint']}")
    model = report["model"]
    if model["installed"]:
        state = "prepared" if model["prepared"] else "not prepared yet (`punie model embedded`)"
        console.print(f"model     {model['id']}: {state}\n          {model['folder']}")
    else:
        console.print(f"model     [red]{model['error']}[/]")
    sandbox = report["sandbox"]
    sandbox_state = "[green]available[/]" if sandbox["available"] else "[yellow]none[/]"
    console.print(f"sandbox   {sandbox['kind']} {sandbox_state} {sandbox['reason']}".rstrip())
    adapter = report["run_adapter"]["adapter"]
    console.print(f"run       serves {adapter or 'the embedded model without an adapter'}")


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
