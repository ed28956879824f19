"""What one generation run kept and skipped: `GenerationReport` (the CLI draws its table)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GenerationReport:
    """What the generator kept, per kind and category, and what it skipped, per reason."""

    repo: str
    repo_name: str
    seed: int
    phrasing: str = "train"
    kept: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.kept.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "repo_name": self.repo_name,
            "seed": self.seed,
            "phrasing": self.phrasing,
            "tasks": self.total,
            "kinds": dict(sorted(self.kept.items())),
            "categories": dict(sorted(self.categories.items())),
            "skipped": dict(self.skipped.most_common()),
            "seconds": round(self.seconds, 3),
        }
