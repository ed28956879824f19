"""Training: mlx-lm LoRA/DoRA/full fine-tuning with the loss on every assistant turn in one pass.

Light to import: MLX is loaded only by the training process itself.
"""

from __future__ import annotations

from punie.train.config import TrainConfig, load_config, make_config
from punie.train.launch import train
from punie.train.recipes import Recipe
from punie.train.result import TrainResult

__all__ = ["Recipe", "TrainConfig", "TrainResult", "load_config", "make_config", "train"]
