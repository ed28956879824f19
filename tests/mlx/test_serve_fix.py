"""The cause of the server's growth, on mlx-lm's own classes: a prompt-cache entry cut out of a
batch's KV cache pins the whole batch buffer until `punie.mlx.serve` evaluates it."""

from __future__ import annotations

import gc

import pytest

BATCH, HEADS, TOKENS, DIM = 8, 3, 1000, 64


def _memory_held_by_one_entry() -> int:
    """Active MLX bytes left after one sequence's cache is stored and the batch is dropped."""
    import mlx.core as mx
    from mlx_lm.models.cache import BatchKVCache, LRUPromptCache

    gc.collect()
    before = mx.get_active_memory()
    store = LRUPromptCache()
    batch = BatchKVCache([0] * BATCH)
    keys = mx.random.normal((BATCH, HEADS, TOKENS, DIM))
    values = mx.random.normal((BATCH, HEADS, TOKENS, DIM))
    batch.update_and_fetch(keys, values)
    mx.eval(batch.keys, batch.values)
    store.insert_cache("model", list(range(TOKENS)), [batch.extract(0)], cache_type="assistant")
    del batch, keys, values
    gc.collect()
    held = mx.get_active_memory() - before
    assert store.nbytes == 2 * HEADS * TOKENS * DIM * 4  # what the cache says it holds
    del store
    gc.collect()
    return held


@pytest.fixture
def restored_insert_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlx_lm.models.cache import LRUPromptCache

    monkeypatch.setattr(LRUPromptCache, "insert_cache", LRUPromptCache.insert_cache)


def test_mlx_lm_alone_keeps_the_whole_batch_alive(restored_insert_cache: None) -> None:
    entry = 2 * HEADS * TOKENS * DIM * 4
    # The batch buffer: every sequence, padded to the next 256 tokens.
    assert _memory_held_by_one_entry() >= BATCH * entry


def test_punie_serve_keeps_only_the_entry(restored_insert_cache: None) -> None:
    from punie.mlx.serve import materialize_prompt_cache_entries

    materialize_prompt_cache_entries()
    entry = 2 * HEADS * TOKENS * DIM * 4
    assert _memory_held_by_one_entry() <= 1.1 * entry
