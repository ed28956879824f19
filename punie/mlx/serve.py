"""`mlx_lm server` as Punie runs it: `python -m punie.mlx.entry main punie.mlx.serve:main ARGS`.

Two fixes to mlx-lm 0.32's server, applied before its `main()`:

- A finished request's KV cache is cut out of the batch's cache lazily
  (`mx.contiguous(batch_keys[i:i+1, :, pad:idx])`, never evaluated) and stored in the prompt
  cache as such. An unevaluated array keeps its inputs alive, so each stored entry pins the whole
  batch-wide KV buffer of its moment (every layer, every sequence in the batch, padding up to
  the next 256 tokens), while the cache counts only the entry's own slice. Under concurrent
  requests memory grows with every request while the log reports a small prompt cache. Here
  the entry is evaluated on insertion, which copies the slice out and frees the batch buffer.
- `--prompt-cache-bytes` is only enforced when a request joins a running batch; here it also
  bounds the prompt cache itself (its `max_bytes`), so every insertion respects it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

PROMPT_CACHE_BYTES_ENV = "PUNIE_PROMPT_CACHE_BYTES"


def materialize_prompt_cache_entries() -> None:
    """Make `LRUPromptCache.insert_cache` evaluate the cache it stores (see the module doc)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.cache import LRUPromptCache

    original = LRUPromptCache.insert_cache
    if getattr(original, "_punie_materializes", False):
        return

    @functools.wraps(original)
    def insert_cache(
        self: Any, model: Any, tokens: Any, prompt_cache: list[Any], **kwargs: Any
    ) -> Any:
        arrays = [
            leaf
            for layer in prompt_cache
            for _, leaf in tree_flatten(layer.state)
            if isinstance(leaf, mx.array)
        ]
        mx.eval(arrays)
        return original(self, model, tokens, prompt_cache, **kwargs)

    insert_cache._punie_materializes = True  # type: ignore[attr-defined]
    LRUPromptCache.insert_cache = insert_cache  # type: ignore[method-assign]


def bound_prompt_cache(max_bytes: int) -> None:
    """Create the server's prompt cache with `max_bytes`, enforced on every insertion."""
    import mlx_lm.server
    from mlx_lm.models.cache import LRUPromptCache

    mlx_lm.server.LRUPromptCache = functools.partial(LRUPromptCache, max_bytes=max_bytes)


def main() -> None:
    """Apply the fixes, then run mlx-lm's server on `sys.argv`."""
    import mlx_lm.server

    materialize_prompt_cache_entries()
    if (limit := os.environ.get(PROMPT_CACHE_BYTES_ENV)) is not None:
        bound_prompt_cache(int(limit))
    mlx_lm.server.main()
