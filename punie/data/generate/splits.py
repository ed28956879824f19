"""The one place that decides which installed packages feed which split, and with which
phrasing set: training and validation draw from some packages with the `train` wording, the
eval's held-out tasks from others with the `held_out` wording.

Every package named here is installed with Punie (a runtime dependency or one of theirs) and is
pure-Python source, so `punie.loop.stages.package_source` finds its folder.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from punie.data.generate.phrasing import PhrasingName
from punie.errors import ConfigError
from punie.records.task import TaskCategory, TaskSpec

SplitName = Literal["train", "valid", "held_out"]


@dataclass(frozen=True)
class SplitPlan:
    """Packages per split; the held-out ones never reach training or validation."""

    train: tuple[str, ...] = ("rich", "click", "jinja2", "markdown_it")
    valid: tuple[str, ...] = ("structlog",)
    held_out: tuple[str, ...] = ("anyio", "httpx", "platformdirs")
    held_out_tasks_per_package: int = 60
    """The full held-out set is this many tasks per held-out package (3 x 60 = 180)."""

    def __post_init__(self) -> None:
        named = [*self.train, *self.valid, *self.held_out]
        repeated = sorted({p for p in named if named.count(p) > 1})
        if repeated:
            raise ConfigError(
                f"packages {', '.join(repeated)} are in more than one split: "
                "each package feeds one split only"
            )
        if not self.train or not self.held_out:
            raise ConfigError("a split plan needs at least one train and one held-out package")

    def packages(self, split: SplitName) -> tuple[str, ...]:
        return {"train": self.train, "valid": self.valid, "held_out": self.held_out}[split]

    @staticmethod
    def phrasing(split: SplitName) -> PhrasingName:
        """The question wording a split's tasks use: held-out tasks have their own."""
        return "held_out" if split == "held_out" else "train"

    def split_of(self, package: str) -> SplitName | None:
        for split in get_args(SplitName):
            if package in self.packages(split):
                return split
        return None


DEFAULT_PLAN = SplitPlan()


def per_package(total: int, packages: Sequence[str]) -> dict[str, int]:
    """`total` tasks shared out over `packages` as evenly as possible (earlier ones get more)."""
    base, extra = divmod(total, len(packages))
    return {p: base + (1 if i < extra else 0) for i, p in enumerate(packages)}


def eval_subset(tasks: Sequence[TaskSpec], count: int | None, seed: int = 0) -> list[TaskSpec]:
    """`count` of the held-out tasks (all when None or more than there are), chosen seeded and
    taking each category in turn, so a small eval still covers every category and package."""
    if count is None or count >= len(tasks):
        return list(tasks)
    rng = random.Random(seed)
    queues: list[list[TaskSpec]] = []
    for category in get_args(TaskCategory):
        members = sorted((t for t in tasks if t.category == category), key=lambda t: t.id)
        rng.shuffle(members)
        members = _interleave_packages(members)
        if members:
            queues.append(members)
    chosen: list[TaskSpec] = []
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def _interleave_packages(tasks: list[TaskSpec]) -> list[TaskSpec]:
    """The tasks reordered so packages take turns, each package's tasks in their given order."""
    rank: dict[str, int] = {}
    seen: Counter[str] = Counter()
    for task in tasks:
        rank[task.id] = seen[task.repo_name]
        seen[task.repo_name] += 1
    return sorted(tasks, key=lambda t: rank[t.id])
