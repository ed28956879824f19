"""Eval suites on disk: JSONL files of `TaskSpec` whose repositories resolve to real folders.

A task's `repo` may be absolute (a generated task names an installed package's source tree) or
relative to the task file's folder (the suites shipped in `eval/` name `fixtures/<name>`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import get_args

import structlog

from punie.errors import DataError
from punie.records.task import TaskCategory, TaskSpec, read_tasks
from punie.shipped import shipped_path

log = structlog.get_logger(__name__)

CATEGORIES: tuple[TaskCategory, ...] = get_args(TaskCategory)
"""Every category, in the order reports list them (the order `TaskCategory` declares)."""
TOOL_CATEGORIES: frozenset[str] = frozenset({"single_tool", "multi_step", "recovery"})

EVAL_DIR = shipped_path("eval")
"""The suites shipped with Punie (inside the wheel, or the checkout's `eval/`)."""


def load_suite(paths: Iterable[Path]) -> list[TaskSpec]:
    """Read task files, resolve each task's repository to an absolute folder, check ids are unique.

    Raises DataError naming the file and task when a repository folder does not exist or an id
    repeats.
    """
    paths = [Path(p) for p in paths]
    tasks: list[TaskSpec] = []
    seen: dict[str, Path] = {}
    for path in paths:
        count = 0
        for task in read_tasks(path):
            repo = Path(task.repo).expanduser()
            if not repo.is_absolute():
                repo = (path.parent / repo).resolve()
            if not repo.is_dir():
                raise DataError(
                    f"{path}: task {task.id!r} names repository {task.repo!r}, which is not a "
                    f"folder ({repo}); fix the path (relative paths start at the task file's "
                    "folder) or regenerate the tasks with `punie data generate`"
                )
            if task.id in seen:
                raise DataError(
                    f"{path}: task id {task.id!r} is also used in {seen[task.id]}; "
                    "task ids must be unique across the suite"
                )
            seen[task.id] = path
            tasks.append(task.model_copy(update={"repo": str(repo)}))
            count += 1
        log.info("suite_file_read", path=str(path), tasks=count)
    if not tasks:
        names = ", ".join(str(p) for p in paths) or "(none)"
        raise DataError(f"no tasks in {names}; pass JSONL files of tasks (see eval/*.jsonl)")
    return tasks


def shipped_suites() -> Sequence[Path]:
    """The task files shipped in `eval/`."""
    return sorted(EVAL_DIR.glob("*.jsonl"))
