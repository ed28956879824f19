"""Causal attention in query blocks, for MLX on a CPU.

MLX's CPU `mx.fast.scaled_dot_product_attention` has no fused kernel: with ``mask="causal"``
it builds the whole (queries x keys) score matrix, masks half of it and runs the softmax over
all of it. At the lengths Punie trains and serves (700-1,500 tokens) attention was 70-85% of a
SmolLM2 layer's time on a 2-core CPU. Cutting the queries into blocks, each attending only to
the keys it can see, computes about half the scores and keeps each block's scores in cache:
the same result (to float rounding) in roughly half the time, forward and backward
(`tools/bench/attention.py` prints the ratios).

`install()` routes MLX's function through `causal_sdpa` in the process it runs in (Punie's
MLX children call it, `punie.mlx.entry`); anything but a plain causal call on the CPU goes to
MLX's own function unchanged. ``PUNIE_MLX_ATTENTION=stock`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import mlx.core as mx

BLOCK = 128
"""Queries per block: 64-256 measure alike at 350-1,400 tokens; 128 keeps a block's scores
(9 heads x 128 x 1,400 floats) near 6 MB."""

ATTENTION_ENV = "PUNIE_MLX_ATTENTION"
_stock: Callable[..., mx.array] | None = None


def causal_sdpa(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    *,
    scale: float,
    block: int = BLOCK,
    attend: Callable[..., mx.array] | None = None,
) -> mx.array:
    """Causal attention of ``queries`` (B, H, Tq, D) over ``keys``/``values`` (B, Hkv, Tk, D),
    the queries being the last Tq positions (as MLX's ``mask="causal"``), in query blocks."""
    attend = attend or _stock or mx.fast.scaled_dot_product_attention
    tq, tk = queries.shape[2], keys.shape[2]
    offset = tk - tq
    outputs = []
    for start in range(0, tq, block):
        stop = min(start + block, tq)
        seen = offset + stop  # block rows see keys [0, offset + stop)
        outputs.append(
            attend(
                queries[:, :, start:stop],
                keys[:, :, :seen],
                values[:, :, :seen],
                scale=scale,
                mask="causal",
            )
        )
    return outputs[0] if len(outputs) == 1 else mx.concatenate(outputs, axis=2)


def _routed(
    queries: mx.array,
    keys: mx.array,
    values: mx.array,
    *args: Any,
    scale: float,
    mask: Any = None,
    **kwargs: Any,
) -> mx.array:
    assert _stock is not None
    # Sinks or an explicit stream: MLX's own function (the blocks would drop them).
    plain = not args and all(key == "sinks" and value is None for key, value in kwargs.items())
    if (
        plain
        and isinstance(mask, str)
        and mask == "causal"
        and queries.shape[2] > BLOCK
        and mx.default_device() == mx.cpu
    ):
        return causal_sdpa(queries, keys, values, scale=scale)
    return _stock(queries, keys, values, *args, scale=scale, mask=mask, **kwargs)


def install(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Route MLX's attention through `causal_sdpa` in this process; False when turned off."""
    global _stock
    if environ.get(ATTENTION_ENV, "blocked") == "stock":
        return False
    if _stock is None:
        _stock = mx.fast.scaled_dot_product_attention
        mx.fast.scaled_dot_product_attention = _routed
    return True


def uninstall() -> None:
    """Give MLX its own attention back."""
    global _stock
    if _stock is not None:
        mx.fast.scaled_dot_product_attention = _stock
        _stock = None
