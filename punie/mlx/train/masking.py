"""Loss masks for chat training rows: every assistant turn in one pass, or the earlier recipes.

The mask comes from the model's own chat template: the tokens of the conversation rendered up to an
assistant turn (with the generation prompt) and through it must be prefixes of the whole
rendering; the tokens between them, up to and including the turn's end-of-turn token, are the
turn's targets. Each prefix is checked token by token, so a template that renders a turn
differently in context fails loudly instead of training on the wrong tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from punie.errors import DataError

log = structlog.get_logger(__name__)


class ChatTokenizer(Protocol):
    """The part of a Hugging Face tokenizer (or mlx-lm's wrapper) the masks need."""

    eos_token_id: int | None

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def convert_tokens_to_ids(self, tokens: Any) -> Any: ...


@dataclass(frozen=True)
class MaskedExample:
    """Token ids and, per token, whether the loss is taken when predicting it (and, optionally,
    with what weight: `weights`, 1.0 for every masked token when None)."""

    tokens: tuple[int, ...]
    mask: tuple[bool, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.mask):
            raise ValueError("tokens and mask differ in length")
        if self.weights is not None and len(self.weights) != len(self.mask):
            raise ValueError("weights and mask differ in length")

    def loss_weights(self) -> tuple[float, ...]:
        """Each token's weight in the loss: 0 where the mask is off."""
        if self.weights is None:
            return tuple(float(m) for m in self.mask)
        return tuple(w if m else 0.0 for w, m in zip(self.weights, self.mask, strict=True))

    @property
    def trained_tokens(self) -> int:
        """How many tokens carry the loss."""
        return sum(self.mask)

    def __len__(self) -> int:
        return len(self.tokens)


def end_of_turn_ids(tokenizer: ChatTokenizer, markers: Iterable[str] = ()) -> frozenset[int]:
    """The ids that end a turn: the tokenizer's eos plus any of ``markers`` in its vocabulary."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for marker in markers:
        token_id = tokenizer.convert_tokens_to_ids(marker)
        unk = getattr(tokenizer, "unk_token_id", None)
        if isinstance(token_id, int) and token_id != unk:
            ids.add(token_id)
    extra = getattr(tokenizer, "eos_token_ids", None)  # mlx-lm's TokenizerWrapper: a set
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(int(i) for i in extra)
    return frozenset(ids)


def render_tokens(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    add_generation_prompt: bool = False,
) -> list[int]:
    """The chat template's token ids for ``messages`` (what mlx-lm's ChatDataset trains on)."""
    tokens = tokenizer.apply_chat_template(
        list(messages),
        tools=list(tools) if tools else None,
        add_generation_prompt=add_generation_prompt,
        tokenize=True,
        return_dict=False,
    )
    return [int(t) for t in tokens]


def _checked_prefix(
    full: Sequence[int], prefix: Sequence[int], index: int, what: str, where: str
) -> int:
    if list(full[: len(prefix)]) != list(prefix):
        mismatch = next(
            (k for k, (a, b) in enumerate(zip(full, prefix, strict=False)) if a != b),
            min(len(full), len(prefix)),
        )
        raise DataError(
            f"{where}: the chat template renders messages[:{index}]{what} differently from the "
            f"start of the whole conversation (first differing token at {mismatch}); the template "
            "must render each turn the same way in context: fix the template or the row"
        )
    return len(prefix)


def assistant_turn_spans(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    eot_ids: frozenset[int],
    *,
    where: str = "row",
    full: Sequence[int] | None = None,
) -> tuple[list[int], list[tuple[int, int]]]:
    """The whole rendering's tokens and, per trained assistant turn, its target span [start, end).

    A span starts after the turn's role header (the generation prompt) and ends right after the
    turn's last end-of-turn token; the template's separator after it is not a target. A turn
    marked `"training": false` (a failed call kept as context) has no span.
    """
    if full is None:
        full = render_tokens(tokenizer, messages, tools)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if not is_trained_turn(message):
            continue
        start = _checked_prefix(
            full,
            render_tokens(tokenizer, messages[:i], tools, add_generation_prompt=True),
            i,
            " with the generation prompt",
            where,
        )
        stop = _checked_prefix(
            full, render_tokens(tokenizer, messages[: i + 1], tools), i + 1, "", where
        )
        end = stop
        while end > start and full[end - 1] not in eot_ids:
            end -= 1
        if end == start:
            raise DataError(
                f"{where}: assistant message {i} renders without an end-of-turn token "
                f"(ids {sorted(eot_ids)}); the model would never learn to stop: fix the chat "
                "template or use `recipe: seed`"
            )
        spans.append((start, end))
    if not spans:
        raise DataError(f"{where}: no assistant message to train on; drop the row")
    return list(full), spans


def is_trained_turn(message: Mapping[str, Any]) -> bool:
    """An assistant message not marked `"training": false`."""
    return message.get("role") == "assistant" and message.get("training", True) is not False


def answers_from_results(messages: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Per trained assistant message, in order: whether it answers from a tool result (it
    follows a `tool` message and calls no tool)."""
    flags = []
    for i, message in enumerate(messages):
        if not is_trained_turn(message):
            continue
        after_tool = i > 0 and messages[i - 1].get("role") == "tool"
        flags.append(after_tool and not message.get("tool_calls"))
    return flags


def assistant_mask(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    eot_ids: frozenset[int],
    *,
    where: str = "row",
    answer_weight: float = 1.0,
) -> MaskedExample:
    """One example holding the whole conversation, the loss on every assistant turn.

    With ``answer_weight`` other than 1, the tokens of each answer from a tool result (the turn
    that has to quote what the tool returned) weigh that much in the loss, every other assistant
    token 1.
    """
    full, spans = assistant_turn_spans(tokenizer, messages, tools, eot_ids, where=where)
    mask = [False] * len(full)
    for start, end in spans:
        mask[start:end] = [True] * (end - start)
    if answer_weight == 1.0:
        return MaskedExample(tuple(full), tuple(mask))
    weights = [1.0] * len(full)
    for (start, end), answer in zip(spans, answers_from_results(messages), strict=True):
        if answer:
            weights[start:end] = [answer_weight] * (end - start)
    return MaskedExample(tuple(full), tuple(mask), tuple(weights))


def per_turn_examples(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    eot_ids: frozenset[int],
    *,
    where: str = "row",
) -> list[MaskedExample]:
    """One example per assistant turn (what stock `--mask-prompt` needs): each reprocesses the
    shared prefix and takes the loss on its last turn only. Kept for comparison and benchmarks."""
    full, spans = assistant_turn_spans(tokenizer, messages, tools, eot_ids, where=where)
    examples = []
    for start, end in spans:
        mask = [False] * start + [True] * (end - start)
        examples.append(MaskedExample(tuple(full[:end]), tuple(mask)))
    return examples


def seed_example(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    where: str = "row",
) -> MaskedExample:
    """The earlier recipe: the rendered `{text}` encoded as mlx-lm's TextDataset does, with the
    loss on every token but the first (user and tool turns included)."""
    text = tokenizer.apply_chat_template(
        list(messages), tools=list(tools) if tools else None, tokenize=False
    )
    tokens = [int(t) for t in tokenizer.encode(text)]
    if not tokens:
        raise DataError(f"{where}: renders to no tokens")
    # mlx-lm's TextDataset.process: append eos when the text does not already end with it.
    if tokenizer.eos_token_id is not None and tokens[-1] != tokenizer.eos_token_id:
        tokens.append(int(tokenizer.eos_token_id))
    return MaskedExample(tuple(tokens), (False, *([True] * (len(tokens) - 1))))
