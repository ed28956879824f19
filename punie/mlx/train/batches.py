"""Batches for masked training: the dataset mlx-lm's trainer iterates, padding, batch order,
and the loss that reads the per-token assistant mask."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from punie.errors import ConfigError
from punie.mlx.train.masking import MaskedExample

_PAD_TO = 32  # as mlx-lm's iterate_batches: fewer distinct shapes for mx.compile


class BatchSource(Protocol):
    """What the feeder batches: a `MaskedDataset`, or a `frozen_cache.CachedSplit`."""

    examples: Sequence[MaskedExample]

    def __len__(self) -> int: ...

    def batch(self, ids: list[int], max_seq_length: int) -> tuple[tuple[mx.array, ...], int]: ...


class MaskedDataset:
    """Masked examples, indexable as mlx-lm's trainer expects."""

    def __init__(self, examples: list[MaskedExample]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, idx: int) -> MaskedExample:
        return self.examples[idx]

    def batch(self, ids: list[int], max_seq_length: int) -> tuple[tuple[mx.array, ...], int]:
        """(tokens, mask) for `masked_loss`, and the batch's real token count."""
        tokens, mask, real = pack_batch([self.examples[i] for i in ids], max_seq_length)
        return (mx.array(tokens), mx.array(mask)), real


def masked_loss(model: nn.Module, batch: mx.array, mask: mx.array) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over the tokens whose mask is set, weighted by the mask's values;
    returns (loss, the weights' sum: the trained tokens when every weight is 1)."""
    inputs = batch[:, :-1]
    targets = batch[:, 1:]
    weights = mask[:, 1:]
    logits = model(inputs)
    ce = nn.losses.cross_entropy(logits, targets) * weights
    ntoks = weights.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


def pack_batch(
    examples: list[MaskedExample], max_seq_length: int, width_multiple: int = _PAD_TO
) -> tuple[np.ndarray, np.ndarray, int]:
    """Tokens and loss weights (the mask, or the example's weights) padded to one plus a multiple
    of ``width_multiple`` (as mlx-lm does), truncated to ``max_seq_length``; also the real token
    count."""
    longest = max(len(e) for e in examples)
    width = min(
        1 + width_multiple * ((longest + width_multiple - 1) // width_multiple), max_seq_length
    )
    tokens = np.zeros((len(examples), width), np.int32)
    mask = np.zeros((len(examples), width), np.float32)
    real = 0
    for row, example in enumerate(examples):
        n = min(len(example), width)
        tokens[row, :n] = example.tokens[:n]
        mask[row, :n] = example.loss_weights()[:n]
        real += n
    return tokens, mask, real


def batch_order(n_examples: int, batch_size: int, lengths: list[int]) -> list[list[int]]:
    """Batches of similar length (sorted, as mlx-lm's iterator), before shuffling."""
    if n_examples < batch_size:
        raise ConfigError(
            f"key 'batch_size': {batch_size} is more than the {n_examples} examples of a split; "
            "lower batch_size or add data"
        )
    idx = sorted(range(n_examples), key=lambda i: lengths[i])
    return [idx[i : i + batch_size] for i in range(0, n_examples - batch_size + 1, batch_size)]


class BatchFeeder:
    """The `iterate_batches` function given to mlx-lm's trainer.

    Training batches (``loop=True``) come in a seeded order that a resumed run replays from its
    step, so resuming continues the same sequence. When the trainer asks for the next training
    batch, the previous step's update is evaluated: that is where checkpoints are saved.
    """

    def __init__(
        self,
        *,
        seed: int,
        start_step: int,
        on_step_done: Callable[[int, int], None],
    ) -> None:
        self.seed = seed
        self.start_step = start_step
        self.on_step_done = on_step_done
        self.processed_tokens = 0
        self._pending = 0

    def __call__(
        self,
        dataset: BatchSource,
        batch_size: int,
        max_seq_length: int,
        loop: bool = False,
        seed: int | None = None,
        comm_group: Any = None,
    ) -> Iterator[tuple[mx.array, ...]]:
        lengths = [len(e) for e in dataset.examples]
        batches = batch_order(len(dataset), batch_size, lengths)
        if not loop:
            for ids in batches:
                yield dataset.batch(ids, max_seq_length)[0]
            return
        yield from self._training(dataset, batches, max_seq_length)

    def _training(
        self,
        dataset: BatchSource,
        batches: list[list[int]],
        max_seq_length: int,
    ) -> Iterator[tuple[mx.array, ...]]:
        rng = np.random.default_rng(self.seed)
        step = 0  # optimizer steps taken before the batch being yielded, counted from zero
        while True:
            for b in rng.permutation(len(batches)):
                if step < self.start_step:
                    step += 1
                    continue
                arrays, real = dataset.batch(batches[b], max_seq_length)
                if step > self.start_step:
                    self._count_step(step)
                self._pending = real
                step += 1
                yield arrays
            # mlx-lm's iterator reshuffles per epoch; so does this one, from the same generator.

    def _count_step(self, step: int) -> None:
        self.processed_tokens += self._pending
        self._pending = 0
        self.on_step_done(step, self.processed_tokens)

    def finish(self, step: int) -> None:
        """Count the last step (the trainer does not ask for a batch after it)."""
        self._count_step(step)
