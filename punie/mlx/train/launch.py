"""`train()`: check a configuration, then run mlx-lm training where the fast BLAS is loaded.

MLX binds its BLAS when it loads, so a process that has not preloaded OpenBLAS/MKL trains in an
MLX child (`punie.mlx.child.call` of `punie.mlx.train.worker.train_request`) started with the BLAS
environment; it dies with this process, and its errors come back as the same PunieError with the
same one-line message.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from punie.mlx.blas import BlasChoice, choose_blas
from punie.mlx.child import MemoryPolicy, call
from punie.mlx.train.config import TrainConfig, resolve
from punie.mlx.train.result import TrainResult

log = structlog.get_logger(__name__)


def blas_loaded(choice: BlasChoice, maps: Path = Path("/proc/self/maps")) -> bool:
    """Whether this process already has ``choice``'s library mapped (so MLX uses it)."""
    if choice.library is None:
        return True
    try:
        mapped = maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return str(choice.library.resolve()) in mapped or str(choice.library) in mapped


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train an adapter as ``config`` says; returns where it is and how the loss ended.

    The configuration is checked first (splits, model folder, layer count; then every row renders
    and masks) so a bad one fails before any step. Runs in this process when the chosen BLAS is
    already loaded (or there is none to load), else in a BLAS-preloaded child process.
    """
    run = resolve(config)
    choice = choose_blas(enabled=config.fast_blas)
    if blas_loaded(choice):
        from punie.mlx.train.trainer import run_training

        return run_training(run, progress=progress, blas=choice.name)
    return _train_in_child(config, progress=progress, choice=choice)


def _train_in_child(config: TrainConfig, *, progress: bool, choice: BlasChoice) -> TrainResult:
    log.info("train_child_start", blas=choice.name, library=str(choice.library))
    # Output not logged: the child's progress bar draws on this terminal. MLX's buffer cache is
    # left at its default and freed memory is kept (training reuses the same shapes every step).
    result = call(
        "training",
        "punie.mlx.train.worker:train_request",
        {"config": config.to_dict(), "progress": progress},
        fast_blas=config.fast_blas,
        memory=MemoryPolicy(cache_limit_bytes=None, keep_freed_memory=True),
        log_output=False,
    )
    return TrainResult.from_json(result)
