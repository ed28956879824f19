"""The task record the generator writes and the evaluator reads: `TaskSpec`, and its JSONL files.

A task names the repository, the question, the tool and arguments that count as right (per
argument, a list of acceptable values, as the Berkeley Function Calling Leaderboard does) and
the facts the final answer must hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from punie.records.jsonl import read_records, write_records

log = structlog.get_logger(__name__)

TaskCategory = Literal[
    "single_tool", "multi_step", "direct_answer", "cannot_answer", "ask_back", "recovery"
]


class TaskSpec(BaseModel):
    """One evaluation task, grounded in a real repository."""

    model_config = ConfigDict(extra="forbid")

    id: str
    repo: str
    """The repository's path on disk, the workspace root the agent runs in."""
    repo_name: str
    category: TaskCategory
    question: str
    expected_tool: str | None = None
    """The first tool a right answer calls; None when no tool should be called."""
    expected_arguments: dict[str, list[Any]] = Field(default_factory=dict)
    """Per argument, the acceptable values; arguments not listed are free."""
    optional_arguments: list[str] = Field(default_factory=list)
    """Arguments that may be left out; when given, they must be one of the listed values."""
    required_facts: list[str] = Field(default_factory=list)
    """Strings the final answer must contain, each as a whole token (case-insensitive)."""
    result_facts: list[str] = Field(default_factory=list)
    """Strings the first call's real result must contain, each as a whole token (case-sensitive),
    for the executed verdict to accept it, whatever its argument values (and whatever the strict
    verdict); empty: the executed verdict is the strict one."""
    kind: str


def read_tasks(path: Path) -> Iterator[TaskSpec]:
    """Yield the tasks of a JSONL file; a bad line raises DataError naming file:line."""
    return read_records(
        path, TaskSpec, what="tasks", fix="regenerate the file with `punie data generate`"
    )


def write_tasks(path: Path, tasks: Iterable[TaskSpec]) -> int:
    """Write tasks as JSONL, atomically (a temporary file replaces `path` when complete)."""
    count = write_records(path, tasks)
    log.info("tasks_written", path=str(path), tasks=count)
    return count
