"""`punie.mlx.attention`: blocked causal attention gives MLX's own result and gradients, is
used only for plain causal calls, and is what Punie's MLX children run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import pytest

from punie.mlx import attention
from punie.mlx.child import call

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
STOCK = mx.fast.scaled_dot_product_attention


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    attention.uninstall()
    assert mx.fast.scaled_dot_product_attention is STOCK


def _qkv(batch: int, queries: int, keys: int) -> tuple[mx.array, mx.array, mx.array]:
    mx.random.seed(queries * 7 + keys)
    q = mx.random.normal((batch, 9, queries, 64))
    k = mx.random.normal((batch, 3, keys, 64))  # grouped-query: 3 key heads for 9
    v = mx.random.normal((batch, 3, keys, 64))
    return q, k, v


@pytest.mark.parametrize(
    ("queries", "keys", "block"),
    [(300, 300, 128), (257, 700, 64), (400, 700, 128), (129, 129, 128), (50, 900, 16)],
)
def test_blocked_attention_matches_mlx_with_the_queries_at_the_end(
    queries: int, keys: int, block: int
) -> None:
    q, k, v = _qkv(2, queries, keys)
    want = STOCK(q, k, v, scale=0.125, mask="causal")
    got = attention.causal_sdpa(q, k, v, scale=0.125, block=block)
    assert got.shape == want.shape
    assert mx.abs(got - want).max().item() < 1e-5


def test_blocked_attention_has_mlx_s_gradients() -> None:
    q, k, v = _qkv(1, 333, 500)
    cotangent = mx.random.normal(q.shape)

    def stock(q, k, v):
        return (STOCK(q, k, v, scale=0.125, mask="causal") * cotangent).sum()

    def blocked(q, k, v):
        return (attention.causal_sdpa(q, k, v, scale=0.125, block=64) * cotangent).sum()

    want = mx.grad(stock, argnums=(0, 1, 2))(q, k, v)
    got = mx.grad(blocked, argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(want, got, strict=True):
        assert mx.abs(a - b).max().item() < 1e-4 * max(1.0, mx.abs(a).max().item())


def test_installed_it_takes_plain_causal_calls_and_leaves_the_rest_to_mlx() -> None:
    q, k, v = _qkv(1, 300, 300)
    assert attention.install({}) is True
    routed = mx.fast.scaled_dot_product_attention
    assert routed is not STOCK
    want = STOCK(q, k, v, scale=0.125, mask="causal")
    assert mx.abs(routed(q, k, v, scale=0.125, mask="causal") - want).max().item() < 1e-5
    # An explicit mask (batched generation's left padding) and no mask go to MLX unchanged.
    mask = mx.random.uniform(shape=(1, 1, 300, 300)) > 0.3
    assert mx.array_equal(routed(q, k, v, scale=0.125, mask=mask),
                          STOCK(q, k, v, scale=0.125, mask=mask))  # fmt: skip
    assert mx.array_equal(routed(q, k, v, scale=0.125), STOCK(q, k, v, scale=0.125))
    short_q = q[:, :, :10]
    assert mx.array_equal(routed(short_q, k, v, scale=0.125, mask="causal"),
                          STOCK(short_q, k, v, scale=0.125, mask="causal"))  # fmt: skip
    attention.install({})  # twice is once
    attention.uninstall()
    assert mx.fast.scaled_dot_product_attention is STOCK


def test_it_can_be_turned_off() -> None:
    assert attention.install({attention.ATTENTION_ENV: "stock"}) is False
    assert mx.fast.scaled_dot_product_attention is STOCK


@pytest.mark.parametrize(("setting", "routed"), [(None, True), ("stock", False)])
def test_punie_s_mlx_children_run_it(setting: str | None, routed: bool) -> None:
    env = {**ENV, **({attention.ATTENTION_ENV: setting} if setting else {})}
    seen = call("attention", "child_targets:attention_routed", {}, extra_env=env)
    assert seen == {"routed": routed}
