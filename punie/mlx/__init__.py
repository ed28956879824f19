"""Local models: GGUF import into mlx-lm folders, the chat template with tools, the embedded model.

Names are loaded lazily, so importing a light submodule (e.g. `punie.mlx.blas`) does not
import MLX.
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
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'punie.mlx' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
