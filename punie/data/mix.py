"""The mixer: code-domain and generic conversations into mlx-lm's train/valid/test chat files.

Conversations are checked against the target model's own chat template (renders, fits the
maximum length, every assistant turn ends with the end-of-turn token, no placeholder results),
split so nothing leaks (by source conversation, and by repository for generated tasks), mixed at
a seeded code/generic ratio and written with a dataset card.
"""

from __future__ import annotations

import hashlib
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from punie.data.harvest import is_placeholder_result
from punie.errors import DataError
from punie.records.conversation import Conversation, read_conversations
from punie.records.jsonl import write_json, write_rows
from punie.records.profile import resolve_profile

log = structlog.get_logger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class MixConfig:
    """How to mix; every field is a `punie data mix` flag."""

    ratio: float = 0.7
    """Share of code-domain conversations in each split."""
    seed: int = 0
    model_dir: Path | None = None
    """The target model folder whose chat template validates the data (default: embedded)."""
    max_seq_length: int = 2048
    per_turn: bool = False
    """Write one example per assistant turn (for stock `mlx_lm lora --mask-prompt`)."""
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    held_out_repos: tuple[str, ...] = ()
    """Repositories of generated tasks that go to the test split (all others go to train)."""
    valid_repos: tuple[str, ...] = ()
    """Repositories of generated tasks that go to the valid split."""
    balance: str = "down"
    """How the ratio is reached: `down` drops rows of the larger domain; `over` repeats rows of
    the smaller one (as LLaMA-Factory's `interleave_over`), so no code row is thrown away when
    the public rows are few."""


BALANCES = ("down", "over")


def check_balance(balance: str) -> None:
    """DataError naming `--balance` when it is not one of `BALANCES`."""
    if balance not in BALANCES:
        raise DataError(f"--balance must be one of {', '.join(BALANCES)}, got {balance!r}")


@dataclass
class _Item:
    conversation: Conversation
    domain: str  # "code" | "generic"
    group: str
    tokens: int = 0


@dataclass
class DatasetCard:
    """What was written: counts per source and split, the ratio reached, token lengths, drops."""

    out_dir: str
    config: dict[str, Any]
    inputs: dict[str, list[str]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """split -> source -> conversations."""
    domains: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    """split -> rows written (more than conversations with per_turn)."""
    ratio_achieved: dict[str, float | None] = field(default_factory=dict)
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    repositories: dict[str, list[str]] = field(default_factory=dict)
    repeated: dict[str, int] = field(default_factory=dict)
    """split -> rows that are repeats (`balance: over`)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TemplateValidator:
    """Checks conversations against a model folder's chat template and counts their tokens."""

    def __init__(self, model_dir: Path, max_seq_length: int) -> None:
        from mlx_lm.utils import load_tokenizer

        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise DataError(f"model folder {str(model_dir)!r} does not exist: pass --model DIR")
        self.tokenizer = load_tokenizer(self.model_dir)
        self.end_of_turn = resolve_profile(model_dir=self.model_dir).end_of_turn
        self.max_seq_length = max_seq_length

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False)

    def check(self, conversation: Conversation) -> tuple[str | None, int]:
        """(the reason the conversation is unusable, or None; its token count)."""
        if any(
            m.role == "tool" and is_placeholder_result(m.content) for m in conversation.messages
        ):
            return "placeholder_result", 0
        row = conversation.to_openai()
        messages, tools = row["messages"], row.get("tools")
        try:
            text = self.render(messages, tools)
        except Exception as exc:  # jinja raises many kinds; the reason names the failure
            log.info("template_failed", error=str(exc)[:200])
            return "template_error", 0
        tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
        if tokens > self.max_seq_length:
            return "too_long", tokens
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prefix = self.render(messages[: index + 1], tools)
            if not text.startswith(prefix):
                return "assistant_turn_not_a_prefix", tokens
            if not any(prefix.rstrip().endswith(marker) for marker in self.end_of_turn):
                return "no_end_of_turn_after_assistant", tokens
        return None, tokens


def _question(conversation: Conversation) -> str:
    return next((m.content.strip() for m in conversation.messages if m.role == "user"), "")


def _group(conversation: Conversation) -> str:
    """Generated tasks and harvested runs group by repository; other rows by their opening
    question, so copies of one source conversation (public sets hold some) land in one split."""
    meta = conversation.meta
    if meta.source in ("generated", "harvested") and meta.repository:
        return f"repo:{meta.repository}"
    return f"row:{meta.source}:{_question(conversation)}"


def _drop_leaks(splits: dict[str, list[_Item]], dropped: Counter[str]) -> None:
    """Remove from valid and test any conversation whose question an earlier split holds.

    Generated repositories share a few repository-free questions (vague requests to ask back
    on), which would otherwise appear in train and test alike.
    """
    seen = {_question(i.conversation) for i in splits.get("train", [])}
    for split in ("valid", "test"):
        kept = []
        for item in splits.get(split, []):
            if _question(item.conversation) in seen:
                dropped["duplicate_of_earlier_split"] += 1
                continue
            kept.append(item)
        splits[split] = kept
        seen |= {_question(i.conversation) for i in kept}


def _split_of(group: str, config: MixConfig) -> str:
    if group.startswith("repo:"):
        name = group.removeprefix("repo:")
        if name in config.held_out_repos:
            return "test"
        if name in config.valid_repos:
            return "valid"
        return "train"
    digest = hashlib.sha256(f"{config.seed}\0{group}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    if point < config.test_fraction:
        return "test"
    if point < config.test_fraction + config.valid_fraction:
        return "valid"
    return "train"


def _balance(items: list[_Item], ratio: float, rng: random.Random, how: str) -> list[_Item]:
    """Make code `ratio` of the items: drop rows of the larger domain (`down`) or repeat rows
    of the smaller one (`over`: each whole times, then a seeded sample of the rest).

    Harvested runs (the loop's own verified traces) are kept before any generated task when
    code is downsampled, so feeding them back keeps the ratio by replacing generated rows.
    """
    code = [i for i in items if i.domain == "code"]
    generic = [i for i in items if i.domain == "generic"]
    if not code or not generic:
        return items
    code_heavy = len(code) / len(items) > ratio
    if how == "over":
        if code_heavy:
            generic = _repeat(generic, round(len(code) * (1 - ratio) / ratio), rng)
        else:
            code = _repeat(code, round(len(generic) * ratio / (1 - ratio)), rng)
    elif code_heavy:
        keep = min(len(code), round(len(generic) * ratio / (1 - ratio)))
        own = [i for i in code if i.conversation.meta.source == "harvested"][:keep]
        if own:
            others = [i for i in code if i.conversation.meta.source != "harvested"]
            code = own + rng.sample(others, keep - len(own))
        else:
            code = rng.sample(code, keep)
    else:
        generic = rng.sample(generic, min(len(generic), round(len(code) * (1 - ratio) / ratio)))
    mixed = code + generic
    rng.shuffle(mixed)
    return mixed


def _repeat(items: list[_Item], total: int, rng: random.Random) -> list[_Item]:
    """`items` repeated up to `total` rows: every item equally often, give or take one."""
    whole, rest = divmod(max(total, len(items)), len(items))
    return items * whole + rng.sample(items, rest)


def per_turn_rows(conversation: Conversation) -> list[dict[str, Any]]:
    """One row per assistant turn: the conversation up to and including that turn."""
    row = conversation.to_openai()
    out = []
    for index, message in enumerate(row["messages"]):
        if message["role"] == "assistant":
            example = {"messages": row["messages"][: index + 1]}
            if "tools" in row:
                example["tools"] = row["tools"]
            out.append(example)
    return out


def _token_stats(counts: Sequence[int]) -> dict[str, float]:
    if not counts:
        return {}
    ordered = sorted(counts)
    return {
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 1),
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def _write_split(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write a split's rows; an empty split gets no file (and loses a stale one), because
    `mlx_lm lora` fails on an empty split file but skips a missing one."""
    if rows:
        write_rows(path, rows)
    else:
        path.unlink(missing_ok=True)
        log.info("split_empty_not_written", path=str(path))


def mix_datasets(
    code: Sequence[Path],
    generic: Sequence[Path],
    out_dir: Path,
    config: MixConfig | None = None,
    *,
    on_item: Callable[[], None] | None = None,
) -> DatasetCard:
    """Validate, split, mix and write `train.jsonl`, `valid.jsonl`, `test.jsonl` and `card.json`.

    A split with no rows gets no file: stock `mlx_lm lora --data` reads the folder as it is.
    """
    config = config or MixConfig()
    if not 0 < config.ratio < 1:
        raise DataError(f"--ratio must be between 0 and 1 (exclusive), got {config.ratio}")
    check_balance(config.balance)
    if not code:
        raise DataError("no --code conversations given: pass at least one --code FILE")
    model_dir = config.model_dir
    if model_dir is None:
        from punie.mlx.embedded import embedded_model_dir

        model_dir = embedded_model_dir()
    validator = TemplateValidator(model_dir, config.max_seq_length)
    dropped: Counter[str] = Counter()
    splits: dict[str, list[_Item]] = defaultdict(list)
    for domain, paths in (("code", code), ("generic", generic)):
        for path in paths:
            for conversation in read_conversations(Path(path)):
                if on_item is not None:
                    on_item()
                reason, tokens = validator.check(conversation)
                if reason is not None:
                    dropped[reason] += 1
                    log.info("conversation_dropped", source=conversation.meta.source, reason=reason)
                    continue
                group = _group(conversation)
                item = _Item(conversation, domain, group, tokens)
                splits[_split_of(group, config)].append(item)
    _drop_leaks(splits, dropped)
    rng = random.Random(config.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = DatasetCard(
        out_dir=str(out_dir),
        config={
            **{k: v for k, v in asdict(config).items() if k != "model_dir"},
            "model_dir": str(model_dir),
        },
        inputs={"code": [str(p) for p in code], "generic": [str(p) for p in generic]},
        dropped=dict(dropped),
    )
    for split in SPLITS:
        items = _balance(splits.get(split, []), config.ratio, rng, config.balance)
        rows: list[dict[str, Any]] = []
        for item in items:
            if config.per_turn:
                rows += per_turn_rows(item.conversation)
            else:
                row = item.conversation.to_openai()
                rows.append(row)
        _write_split(out_dir / f"{split}.jsonl", rows)
        card.counts[split] = dict(Counter(i.conversation.meta.source for i in items))
        card.domains[split] = dict(Counter(i.domain for i in items))
        card.examples[split] = len(rows)
        card.repeated[split] = len(items) - len({id(i) for i in items})
        card.ratio_achieved[split] = (
            round(card.domains[split].get("code", 0) / len(items), 4) if items else None
        )
        card.tokens[split] = _token_stats([i.tokens for i in items])
        card.repositories[split] = sorted(
            {i.conversation.meta.repository for i in items if i.group.startswith("repo:")}
        )
    write_json(out_dir / "card.json", card.to_dict())
    log.info("mix_written", out_dir=str(out_dir), examples=card.examples, dropped=card.dropped)
    return card
