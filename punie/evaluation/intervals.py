"""Wilson score intervals: how far a rate measured on n tasks can be trusted."""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel

Z_95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal distribution."""


class RateInterval(BaseModel):
    """A rate, its Wilson 95% interval and the number of tasks it was measured on."""

    rate: float
    low: float
    high: float
    n: int
    successes: int


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n` ((0, 1) when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..{n}, got {successes}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_interval(flags: Iterable[bool]) -> RateInterval:
    """The share of true flags, with its Wilson interval and count."""
    values = [bool(f) for f in flags]
    n, successes = len(values), sum(values)
    low, high = wilson_interval(successes, n)
    return RateInterval(
        rate=successes / n if n else 0.0, low=low, high=high, n=n, successes=successes
    )
