"""Functions the MLX-child tests run in a real child (`PYTHONPATH` points here)."""

from __future__ import annotations

import os
import time

from punie.errors import DataError


def echo(**values: object) -> dict[str, object]:
    """Returns its request with the child's pid."""
    return {"values": values, "pid": os.getpid()}


def refuse(message: str) -> None:
    """Fails the way Punie code fails: a PunieError."""
    raise DataError(message)


def hold(megabytes: int, seconds: float = 0.0) -> int:
    """Touches `megabytes` of memory, then keeps it for `seconds`."""
    block = bytearray(megabytes << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(seconds)
    return len(block)


def die() -> None:
    """Ends the process at once, reporting nothing."""
    os._exit(3)


def forever() -> None:
    """Runs until something stops it."""
    while True:
        time.sleep(1)


def main_forever() -> None:
    """`forever` as an entry point."""
    forever()


def main_hold() -> None:
    """`hold(300)` as an entry point."""
    hold(300, seconds=1.5)


def environment(name: str) -> dict[str, object]:
    """One variable of the child's environment (None when unset)."""
    return {"value": os.environ.get(name)}


def attention_routed() -> dict[str, bool]:
    """Whether MLX's attention goes through Punie's blocked causal attention here."""
    import mlx.core as mx

    from punie.mlx import attention

    return {"routed": mx.fast.scaled_dot_product_attention is attention._routed}
