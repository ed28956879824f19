"""Training recipes: how a split's chat rows become masked examples.

`punie` (the default) keeps each conversation whole and takes the loss on every assistant turn,
end-of-turn token included. `seed` reproduces the earlier attempt: the rendered `{text}` of each
conversation with the loss on every token, so the two can be compared on the same model and data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from punie.errors import DataError
from punie.mlx.train.masking import ChatTokenizer, MaskedExample, assistant_mask, seed_example
from punie.records.jsonl import iter_json_lines

log = structlog.get_logger(__name__)


class Recipe(StrEnum):
    """Which loss mask a training run uses."""

    punie = "punie"
    seed = "seed"


@dataclass(frozen=True)
class SplitExamples:
    """A split's examples, with what was dropped for not fitting `max_seq_length`."""

    path: Path
    examples: list[MaskedExample]
    rows: int
    dropped_too_long: int
    truncated: int

    @property
    def tokens(self) -> int:
        """Tokens the model processes for one pass over the split (before truncation)."""
        return sum(len(e) for e in self.examples)

    @property
    def trained_tokens(self) -> int:
        """Tokens that carry the loss."""
        return sum(e.trained_tokens for e in self.examples)


def read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON rows of an mlx-lm chat-format JSONL file, with their line numbers."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, row in iter_json_lines(path, what="training split", fix="rebuild the split"):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages:
            raise DataError(
                f"{path}:{number}: no 'messages' list; a split row is "
                '{"messages": [...], "tools": [...]} as `punie data mix` writes it'
            )
        rows.append((number, row))
    if not rows:
        raise DataError(f"{path}: holds no rows; rebuild the split with `punie data mix`")
    return rows


def example_builder(
    recipe: Recipe,
    tokenizer: ChatTokenizer,
    eot_ids: frozenset[int],
    *,
    answer_weight: float = 1.0,
) -> Callable[[dict[str, Any], str], MaskedExample]:
    """A function turning one chat row into a masked example under ``recipe`` (`punie`: answers
    from tool results weigh ``answer_weight`` in the loss)."""

    def build(row: dict[str, Any], where: str) -> MaskedExample:
        messages, tools = row["messages"], row.get("tools")
        try:
            if recipe is Recipe.seed:
                return seed_example(tokenizer, messages, tools, where=where)
            return assistant_mask(
                tokenizer, messages, tools, eot_ids, where=where, answer_weight=answer_weight
            )
        except DataError:
            raise
        except Exception as exc:  # jinja2 and tokenizer errors: a row the template cannot render
            raise DataError(
                f"{where}: does not render through the model's chat template "
                f"({type(exc).__name__}: {exc}); fix or drop the row"
            ) from exc

    return build


def load_split(
    path: Path,
    tokenizer: ChatTokenizer,
    recipe: Recipe,
    eot_ids: frozenset[int],
    *,
    max_seq_length: int,
    on_row: Callable[[], None] | None = None,
    answer_weight: float = 1.0,
) -> SplitExamples:
    """Render every row of a split; a row that cannot render raises DataError naming file:line.

    Examples whose first trained token lies beyond ``max_seq_length`` are dropped (they would
    contribute no loss); longer ones are counted as truncated.
    """
    build = example_builder(recipe, tokenizer, eot_ids, answer_weight=answer_weight)
    examples: list[MaskedExample] = []
    rows = read_rows(path)
    dropped = truncated = 0
    for number, row in rows:
        example = build(row, f"{path}:{number}")
        if on_row is not None:
            on_row()
        # Predicting token j needs tokens[:j]; after truncation the targets are tokens[1:limit].
        if not any(example.mask[1:max_seq_length]):
            dropped += 1
            continue
        if len(example) > max_seq_length:
            truncated += 1
        examples.append(example)
    if dropped or truncated:
        log.warning(
            "split_too_long",
            path=str(path),
            dropped=dropped,
            truncated=truncated,
            max_seq_length=max_seq_length,
        )
    if not examples:
        raise DataError(
            f"{path}: every row's targets lie beyond max_seq_length={max_seq_length}; "
            "raise max_seq_length"
        )
    return SplitExamples(Path(path), examples, len(rows), dropped, truncated)
