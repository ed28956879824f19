"""MLX child processes: the one launcher (`punie.mlx.child`), the entry the children run
(`punie.mlx.entry`) and the patched mlx-lm server main (`punie.mlx.serve`).

Names are loaded lazily, so importing a light submodule does not import MLX.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ChildError": "punie.mlx.child",
    "MemoryPolicy": "punie.mlx.child",
    "MlxChild": "punie.mlx.child",
    "call": "punie.mlx.child",
    "run_main": "punie.mlx.child",
    "start": "punie.mlx.child",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'punie.mlx' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
