"""The task record the generator writes and the evaluator reads: `TaskSpec`, and its JSONL files.

A task names the repository, the question, the tool and arguments that count as right (per
argument, a list of acceptable values, as the Berkeley Function Calling Leaderboard does) and
the facts the final answer must hold.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from punie.errors import DataError

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
    """Strings the final answer must contain (case-insensitive)."""
    kind: str


def read_tasks(path: Path) -> Iterator[TaskSpec]:
    """Yield the tasks of a JSONL file; a bad line raises DataError naming file:line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot open tasks file ({exc.strerror})") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield TaskSpec.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "row"
                raise DataError(
                    f"{path}:{number}: not a TaskSpec ({where}: {first['msg']}); "
                    "regenerate the file with `punie data generate`"
                ) from exc


def write_tasks(path: Path, tasks: Iterable[TaskSpec]) -> int:
    """Write tasks as JSONL, atomically (a temporary file replaces `path` when complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for task in tasks:
                out.write(task.model_dump_json())
                out.write("\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    log.info("tasks_written", path=str(path), tasks=count)
    return count
