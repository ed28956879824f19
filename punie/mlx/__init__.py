"""Everything that runs MLX: the one launcher of MLX children (`child`, `entry`), the mlx-lm
server and its patched main (`server`, `serve`), the BLAS choice (`blas`), GGUF import, the
embedded model, adapters, and training (`train/`).

Names are loaded lazily, so importing a light submodule does not import MLX.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EMBEDDED_MODEL_ID": "punie.mlx.embedded",
    "embedded_gguf_path": "punie.mlx.embedded",
    "embedded_model_dir": "punie.mlx.embedded",
    "TOOLS_CHAT_TEMPLATE": "punie.mlx.chat_template",
    "import_gguf": "punie.mlx.gguf_import",
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
