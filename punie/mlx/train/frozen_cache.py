"""Cached frozen layers: the bottom, untrained layers run once per row.

LoRA/DoRA (and a full fine-tune of the top layers) touch only the top ``num_layers`` layers; the
layers below are frozen, carry no adapter and no dropout, so their output is a fixed function of
the tokens. `build_cached_split` runs them once before training (the token prefixes examples
share, such as the system prompt with the tool schemas, once, through mlx-lm KV caches) and keeps
each example's hidden state at the first trained layer. Each step then runs only the top layers
on those states (`CachedLoss`), sharing the batch's common prefix across its rows, and takes the
output head only where the loss mask is set: the same loss and gradients as `masked_loss` on the
full model, for much less work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import structlog
from mlx.utils import tree_flatten
from mlx_lm.models.base import create_attention_mask
from mlx_lm.models.cache import KVCache

from punie.errors import ConfigError
from punie.mlx.train.batches import pack_batch
from punie.mlx.train.masking import MaskedExample

log = structlog.get_logger(__name__)

_ALIGN = 32  # prefix, suffix and gather lengths are multiples of this: few shapes to compile


def frozen_cut(model: nn.Module, num_layers: int) -> int:
    """How many bottom layers are frozen and adapter-free (0: nothing to cache).

    Call after the adapters are added (or the top layers unfrozen, for a full fine-tune); raises
    ConfigError for a model whose structure the cached path does not know (set
    ``cache_frozen_layers: false`` for it).
    """
    n_layers = len(model.layers)
    if num_layers < 0 or num_layers >= n_layers:
        return 0
    cut = n_layers - num_layers
    inner = getattr(model, "model", None)
    known = (
        inner is not None
        and hasattr(inner, "embed_tokens")
        and hasattr(inner, "norm")
        and not any(getattr(layer, "use_sliding", False) for layer in model.layers)
    )
    if not known:
        raise ConfigError(
            f"key 'cache_frozen_layers': model type {getattr(model, 'model_type', '?')!r} has no "
            "embed_tokens/norm layout (or uses sliding-window attention) that the cached path "
            "knows; set cache_frozen_layers: false"
        )
    for i, layer in enumerate(model.layers[:cut]):
        trainable = tree_flatten(layer.trainable_parameters())
        if trainable:
            raise ConfigError(
                f"key 'cache_frozen_layers': layer {i} (below the {num_layers} trained ones) has "
                f"trainable parameters ({trainable[0][0]}), so its output is not fixed; "
                "set cache_frozen_layers: false"
            )
    return cut


def _bottom(model: nn.Module, tokens: mx.array, caches: list[KVCache], cut: int) -> mx.array:
    """The hidden state after the first ``cut`` layers, continuing from ``caches``."""
    h = model.model.embed_tokens(tokens)
    mask = create_attention_mask(h, caches[0])
    for layer, cache in zip(model.layers[:cut], caches, strict=True):
        h = layer(h, mask, cache)
    return h


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class CachedSplit:
    """A split's examples with their hidden states at the first trained layer: the prefix all
    examples share stored once, the rest per example. Indexable as mlx-lm's trainer expects."""

    def __init__(
        self,
        examples: list[MaskedExample],
        prefix: mx.array,
        suffixes: list[mx.array],
        *,
        share_prefix: bool = True,
        computed_tokens: int = 0,
    ) -> None:
        self.examples = examples
        self.prefix = prefix  # (P, D)
        self.suffixes = suffixes  # each (n_i - P, D)
        self.share_prefix = share_prefix
        self.computed_tokens = computed_tokens  # positions the bottom layers ran on

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, idx: int) -> MaskedExample:
        return self.examples[idx]

    @property
    def nbytes(self) -> int:
        """Memory the cached states take."""
        return self.prefix.nbytes + sum(s.nbytes for s in self.suffixes)

    def hidden(self, idx: int, start: int, stop: int) -> mx.array:
        """Example ``idx``'s cached states for positions [start, stop) (fewer if it is shorter)."""
        p = self.prefix.shape[0]
        parts = []
        if start < p:
            parts.append(self.prefix[start : min(stop, p)])
        if stop > p:
            parts.append(self.suffixes[idx][max(start - p, 0) : stop - p])
        return parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=0)

    def batch(self, ids: list[int], max_seq_length: int) -> tuple[tuple[mx.array, ...], int]:
        """(prefix states (1, p, D), suffix states (B, S, D), gather index, targets, weights) for
        `CachedLoss`, and the batch's real token count."""

        examples = [self.examples[i] for i in ids]
        tokens, mask, real = pack_batch(examples, max_seq_length)
        width = tokens.shape[1] - 1  # input positions, as masked_loss's batch[:, :-1]
        lengths = [min(len(e), width) for e in examples]  # real input positions per row
        shared = width
        if self.share_prefix:
            for e in examples[1:]:
                shared = min(shared, common_prefix(examples[0].tokens, e.tokens))
            shared = min(shared, *lengths) - 1  # each row keeps one position of its own
        p = max(0, shared) // _ALIGN * _ALIGN if self.share_prefix else 0
        s = width - p
        dim = self.prefix.shape[-1]
        rows = []
        for i, n in zip(ids, lengths, strict=True):
            part = self.hidden(i, p, n)
            if part.shape[0] < s:
                part = mx.concatenate([part, mx.zeros((s - part.shape[0], dim), part.dtype)])
            rows.append(part)
        prefix = self.hidden(ids[0], 0, p)[None] if p else mx.zeros((1, 0, dim), self.prefix.dtype)
        # Loss positions in the flattened [prefix; row 0 suffix; row 1 suffix; ...] states.
        weights = mask[:, 1:]
        targets = tokens[:, 1:]
        r, j = np.nonzero(weights)
        index = np.where(j < p, j, p + r * s + (j - p)).astype(np.int32)
        k = _ALIGN * ((len(index) + _ALIGN - 1) // _ALIGN)
        pad = k - len(index)
        arrays = (
            prefix,
            mx.stack(rows),
            mx.array(np.concatenate([index, np.zeros(pad, np.int32)])),
            mx.array(np.concatenate([targets[r, j], np.zeros(pad, np.int32)])),
            mx.array(np.concatenate([weights[r, j], np.zeros(pad, np.float32)])),
        )
        return arrays, real


class _RecordKV:
    """A layer's 'cache' for the prefix pass: keeps the prefix keys and values it sees."""

    offset = 0

    def __init__(self) -> None:
        self.keys: mx.array | None = None
        self.values: mx.array | None = None

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        self.keys, self.values = keys, values
        return keys, values


class _SharedPrefixKV:
    """A layer's 'cache' for the suffix pass: every row attends to the one prefix's keys/values
    (differentiable: broadcast and concatenate, no in-place update)."""

    def __init__(self, recorded: _RecordKV, offset: int) -> None:
        self.recorded = recorded
        self.offset = offset

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        rows = keys.shape[0]
        out = []
        for prefix, new in ((self.recorded.keys, keys), (self.recorded.values, values)):
            shared = mx.broadcast_to(prefix, (rows, *prefix.shape[1:]))
            out.append(mx.concatenate([shared, new], axis=2))
        return out[0], out[1]


def top_states(model: nn.Module, prefix: mx.array, suffix: mx.array, cut: int) -> mx.array:
    """Run layers ``cut``.. on cached states: the prefix once (batch 1), then every row's suffix
    attending to it with the causal mask at its offset. Returns the flattened final states
    (prefix positions, then each row's suffix positions), before the final norm."""
    layers = model.layers[cut:]
    p = prefix.shape[1]
    rows, s, dim = suffix.shape
    if p == 0:
        h = suffix
        mask = create_attention_mask(h, None)
        for layer in layers:
            h = layer(h, mask, None)
        return h.reshape(rows * s, dim)
    prefix_mask = create_attention_mask(prefix, None)
    # MLX's "causal" aligns the queries with the last keys: row i sees the prefix and i.
    suffix_mask = "causal" if s > 1 else None
    hp, hs = prefix, suffix
    for layer in layers:
        recorded = _RecordKV()
        hp = layer(hp, prefix_mask, recorded)
        hs = layer(hs, suffix_mask, _SharedPrefixKV(recorded, p))
    return mx.concatenate([hp.reshape(p, dim), hs.reshape(rows * s, dim)], axis=0)


def output_head(model: nn.Module, h: mx.array) -> mx.array:
    """Final norm and logits, with tied embeddings (SmolLM2) or a separate lm_head."""
    h = model.model.norm(h)
    if hasattr(model, "lm_head"):
        return model.lm_head(h)
    return model.model.embed_tokens.as_linear(h)


@dataclass(frozen=True)
class CachedLoss:
    """`masked_loss` on cached states: mean cross-entropy over the masked positions, computed by
    the top layers only; the head runs on the masked positions alone."""

    cut: int

    def __call__(
        self,
        model: nn.Module,
        prefix: mx.array,
        suffix: mx.array,
        index: mx.array,
        targets: mx.array,
        weights: mx.array,
    ) -> tuple[mx.array, mx.array]:
        states = top_states(model, prefix, suffix, self.cut)
        logits = output_head(model, states[index])
        ce = nn.losses.cross_entropy(logits, targets) * weights
        ntoks = weights.sum()
        return ce.astype(mx.float32).sum() / ntoks, ntoks


def build_cached_split(
    model: nn.Module,
    examples: list[MaskedExample],
    cut: int,
    max_seq_length: int,
    *,
    share_prefix: bool = True,
    on_example: Callable[[], None] | None = None,
) -> CachedSplit:
    """Run the bottom ``cut`` layers once over a split.

    Examples go in token order, so each one shares the longest prefix with the one before: the
    KV caches are trimmed back to that shared prefix and only the rest is run. Positions past
    ``max_seq_length`` (which training truncates away) are not computed.
    """
    cut_tokens = [e.tokens[:max_seq_length] for e in examples]
    common = len(cut_tokens[0])
    for toks in cut_tokens[1:]:
        common = min(common, common_prefix(cut_tokens[0], toks))
    order = sorted(range(len(examples)), key=lambda i: cut_tokens[i])
    caches = [KVCache() for _ in range(cut)]
    suffixes: list[mx.array | None] = [None] * len(examples)
    prefix: mx.array | None = None
    prev: Sequence[int] = ()
    prev_suffix: mx.array | None = None
    computed = 0
    for i in order:
        toks = cut_tokens[i]
        shared = common_prefix(prev, toks)
        for cache in caches:
            cache.trim(cache.offset - shared)
        parts = [prev_suffix[: shared - common]] if prev_suffix is not None else []
        if shared < len(toks):
            new = _bottom(model, mx.array(toks[shared:])[None], caches, cut)[0]
            computed += len(toks) - shared
            if prefix is None:
                prefix = mx.array(new[:common])
                new = new[common:]
            parts.append(new)
        suffix = mx.concatenate(parts, axis=0) if len(parts) > 1 else mx.array(parts[0])
        mx.eval(suffix, prefix, [c.state for c in caches])
        suffixes[i] = suffix
        prev, prev_suffix = toks, suffix
        if on_example is not None:
            on_example()
    assert prefix is not None
    split = CachedSplit(
        examples,
        prefix,
        suffixes,  # type: ignore[arg-type]
        share_prefix=share_prefix,
        computed_tokens=computed,
    )
    log.info(
        "frozen_layers_cached",
        examples=len(examples),
        layers=cut,
        shared_prefix=common,
        computed_tokens=computed,
        total_tokens=sum(len(t) for t in cut_tokens),
        megabytes=round(split.nbytes / 2**20, 1),
    )
    return split


def check_cached_loss(
    model: nn.Module,
    split: CachedSplit,
    cut: int,
    plain: Callable[..., tuple[mx.array, mx.array]],
    ids: list[int],
    max_seq_length: int,
    *,
    rel: float = 1e-3,
) -> tuple[float, float]:
    """The cached and the plain (``plain``: `masked_loss`) loss of one batch; ConfigError when
    they differ, as for a model whose layers do not compose as the cached path assumes."""

    arrays, _ = split.batch(ids, max_seq_length)
    cached, _ = CachedLoss(cut)(model, *arrays)
    tokens, mask, _ = pack_batch([split.examples[i] for i in ids], max_seq_length)
    full, _ = plain(model, mx.array(tokens), mx.array(mask))
    a, b = cached.item(), full.item()
    if not abs(a - b) <= rel * max(abs(b), 1e-6):
        raise ConfigError(
            f"key 'cache_frozen_layers': the cached path's loss {a:.5f} differs from the full "
            f"model's {b:.5f} on this model; set cache_frozen_layers: false"
        )
    log.info("frozen_cache_checked", cached_loss=a, full_loss=b)
    return a, b
