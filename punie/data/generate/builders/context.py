"""What every builder works with: the repository's facts, the real tools, the seeded random
source, the phrasing set, and small helpers for answers."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from punie.data.generate.facts import Definition, RepoFacts
from punie.data.generate.phrasing import Phrasebook
from punie.data.generate.record import Origin
from punie.data.generate.results import grep_hits
from punie.data.generate.toolbox import Skip, Step, Toolbox

ANY_PY_GLOB = ["*.py", "**/*.py", ""]
"""A grep narrowed to Python files, or not narrowed: the same search for Python code."""
WHOLE_REPO = [".", "./", ""]


@dataclass
class BuildContext:
    """The shared state of one generation run."""

    facts: RepoFacts
    tools: Toolbox
    rng: random.Random
    phrases: Phrasebook
    origin: Origin
    by_name: dict[str, list[Definition]] = field(default_factory=dict)

    def ask(self, key: str, **fields: object) -> str:
        return self.phrases.ask(self.rng, key, **fields)

    def ls(self, folder: str) -> list[str]:
        """A folder's entries, hidden ones left out, sorted (what `ls` prints)."""
        path = self.facts.root / folder
        return sorted(e.name for e in path.iterdir() if not e.name.startswith("."))

    def definition_grep(self, pattern: str, d: Definition) -> Step:
        """grep for a definition (sometimes narrowed to `*.py`); it must find exactly `d`."""
        arguments: dict[str, object] = {"pattern": pattern}
        if self.rng.random() < 0.5:
            arguments["glob"] = "*.py"
        step = self.tools.ok("grep", arguments)
        if grep_hits(step.result) != [(d.path, d.line)]:
            raise Skip("grep_disagrees_with_ast")
        return step


def code(text: str) -> str:
    return f"`{text}`"


def listing(items: Sequence[str]) -> str:
    """`a`, `b` and `c`."""
    quoted = [code(i) for i in items]
    if len(quoted) <= 2:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}"
