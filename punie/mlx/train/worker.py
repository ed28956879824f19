"""The training child's function: `train()` runs `train_request` in an MLX child
(`punie.mlx.child.call`) started with the fast-BLAS environment."""

from __future__ import annotations

from typing import Any

from punie.logs import configure_logging
from punie.mlx.blas import choose_blas
from punie.mlx.train.config import make_config, resolve


def train_request(config: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Run one training configuration; returns the TrainResult as JSON (a PunieError raised
    here reaches the parent as the same error)."""
    configure_logging(level="WARNING")
    checked = make_config(config)
    from punie.mlx.train.trainer import run_training

    result = run_training(
        resolve(checked), progress=progress, blas=choose_blas(enabled=checked.fast_blas).name
    )
    return result.to_dict()
