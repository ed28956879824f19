"""Training: mlx-lm LoRA/DoRA/full fine-tuning with the loss on every assistant turn in one pass.

Light to import: MLX is loaded only by the training process itself.
"""

from __future__ import annotations

from punie.mlx.train.config import TrainConfig, load_config, make_config
from punie.mlx.train.launch import train
from punie.mlx.train.recipes import Recipe
from punie.mlx.train.result import TrainResult

__all__ = ["Recipe", "TrainConfig", "TrainResult", "load_config", "make_config", "train"]
