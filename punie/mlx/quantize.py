"""Quantized model folders: a 4-bit copy of an mlx-lm folder, made by mlx-lm's own `convert`.

The copy is what `mlx_lm convert -q` writes (affine quantization of every Linear and Embedding
whose shape allows it); `punie train` trains LoRA adapters on it (QLoRA) and mlx-lm serves it with
them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import structlog

from punie.errors import ModelImportError

log = structlog.get_logger(__name__)


def quantization(model_dir: Path) -> dict[str, Any] | None:
    """The folder's `quantization` block from config.json (None: not quantized)."""
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelImportError(f"model {model_dir}: config.json is unreadable ({exc})") from exc
    block = config.get("quantization") or config.get("text_config", {}).get("quantization")
    return dict(block) if block else None


def quantize_copy(src: Path, dst: Path, *, bits: int = 4, group_size: int = 64) -> Path:
    """Write a ``bits``-bit copy of the mlx-lm folder ``src`` to ``dst`` and return ``dst``.

    Built in a temporary sibling folder and renamed, so ``dst`` is complete or absent; an existing
    ``dst`` quantized the same way is returned as is.
    """
    dst = Path(dst)
    if (dst / "config.json").is_file():
        existing = quantization(dst) or {}
        if existing.get("bits") == bits and existing.get("group_size") == group_size:
            return dst
        raise ModelImportError(f"{dst} exists and is not a {bits}-bit copy; remove it first")
    from mlx_lm import convert

    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}-", dir=dst.parent))
    out = staging / "model"
    try:
        try:
            # mlx-lm prints its progress; keep stdout for the caller's own output
            with contextlib.redirect_stdout(sys.stderr):
                convert(str(src), str(out), quantize=True, q_bits=bits, q_group_size=group_size)
        except (OSError, ValueError) as exc:
            raise ModelImportError(f"mlx-lm cannot quantize {src} ({exc})") from exc
        try:
            os.rename(out, dst)
        except OSError:
            if not (dst / "config.json").is_file():  # else another process finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("model_quantized", src=str(src), dst=str(dst), bits=bits, group_size=group_size)
    return dst


def quantized_copy(src: Path, *, bits: int = 4, group_size: int = 64) -> Path:
    """The ``bits``-bit copy of ``src`` kept beside it (`<src>-<bits>bit-g<group_size>`), made on
    first use."""
    src = Path(src)
    return quantize_copy(
        src, src.with_name(f"{src.name}-{bits}bit-g{group_size}"), bits=bits, group_size=group_size
    )
