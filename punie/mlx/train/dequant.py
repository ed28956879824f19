"""QLoRA on CPU: train on float32 copies of a quantized model's frozen base weights.

MLX's quantized matmul on CPU does not use BLAS: through it a 4-bit layer runs about 20x slower
than the same layer in float32 through OpenBLAS (`tools/bench/train.py`, quantized section), so
building the frozen-layer cache and every step crawl. LoRA/DoRA never change the base weights, so
computing with `mx.dequantize` of them once is the same function, up to float rounding; the
adapter holds only the LoRA matrices, and mlx-lm applies it to the quantized folder as trained.
The copies cost float32 memory (8x the 4-bit weights), so they are made only where they fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import mlx.core as mx
import mlx.nn as nn
import structlog
from mlx.utils import tree_map
from mlx_lm.models.switch_layers import QuantizedSwitchLinear
from mlx_lm.utils import dequantize_model

from punie.mlx import machine

log = structlog.get_logger(__name__)

QUANTIZED = (nn.QuantizedLinear, nn.QuantizedEmbedding, QuantizedSwitchLinear)
MEMORY_FRACTION = 0.5  # dequantize only when the float32 copies take at most this much of the free


@dataclass(frozen=True)
class Dequantized:
    """What `dequantize_base` replaced: module count and the float32 copies' size."""

    modules: int
    nbytes: int


def quantized_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's quantized layers (Linear, Embedding, mixture-of-experts Linear), by name."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZED)]


def float32_nbytes(modules: list[tuple[str, nn.Module]]) -> int:
    """The size of the modules' weights dequantized to float32."""
    total = 0
    for _, module in modules:
        *rows, packed = module.weight.shape
        total += 4 * prod(rows) * (packed * 32 // module.bits)
    return total


def _on_cpu() -> bool:
    return mx.default_device().type == mx.DeviceType.cpu


def dequantize_base(
    model: nn.Module, *, fine_tune_type: str, available: int | None = None
) -> Dequantized | None:
    """Replace the quantized layers of a model about to get LoRA/DoRA adapters by float32 ones
    holding their dequantized weights (call before adding the adapters). Does nothing (None) for
    a float model, full fine-tuning, off the CPU (Metal's quantized kernels are fast), or when the
    copies would take more than `MEMORY_FRACTION` of ``available`` bytes (default: MemAvailable).
    """
    modules = quantized_modules(model)
    if not modules or fine_tune_type == "full" or not _on_cpu():
        return None
    need = float32_nbytes(modules)
    if available is None:
        available = machine.memory_bytes("MemAvailable")
    if available is not None and need > MEMORY_FRACTION * available:
        log.warning(
            "quantized_base_kept",
            reason="float32 copies do not fit",
            need_gb=round(need / 2**30, 1),
            available_gb=round(available / 2**30, 1),
            note="training runs through MLX's CPU quantized matmul, about 20x slower",
        )
        return None
    dequantize_model(model)
    # bf16/fp16 matmuls on CPU bypass BLAS too: compute in float32 throughout.
    model.update(
        tree_map(
            lambda p: p.astype(mx.float32) if mx.issubdtype(p.dtype, mx.floating) else p,
            model.parameters(),
        )
    )
    mx.eval(model.parameters())
    done = Dequantized(len(modules), need)
    log.info("quantized_base_dequantized", modules=done.modules, megabytes=need // 2**20)
    return done
