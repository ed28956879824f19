"""`punie train` and `punie fuse`: LoRA training with mlx-lm."""

from __future__ import annotations

from punie.cli import app  # noqa: F401
