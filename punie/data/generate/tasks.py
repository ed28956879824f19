"""The grounded code-task generator: true training conversations and eval tasks from a real repo.

Each task asks something about a repository on disk; the generator runs the real code tools on it
for the tool results and checks them against facts computed independently (`ast`, the file
system), keeping a task only when both agree. Every task becomes a `Conversation` (the agent's own
system prompt and tool schemas) and a `TaskSpec` for the evaluator. The questions are worded
from one phrasing set (`train` or `held_out`, see `phrasing`).

The parts: `facts` (what `ast` says), `toolbox` (the real tools), `results` (reading their
answers), `builders/` (one module per family of kinds), `kinds` (the registry and round-robin),
`record` (conversation and task spec), `snapshot`, `license`, `report`, `splits` (which packages
and phrasing each split uses).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

import structlog

from punie.data.generate.builders.context import BuildContext
from punie.data.generate.facts import scan_repository
from punie.data.generate.kinds import round_robin
from punie.data.generate.license import package_license
from punie.data.generate.phrasing import phrasebook
from punie.data.generate.record import GeneratedTask, Origin
from punie.data.generate.report import GenerationReport
from punie.data.generate.snapshot import default_snapshot_dir, snapshot_repository, visible_to_tools
from punie.data.generate.toolbox import Toolbox
from punie.errors import DataError
from punie.records.conversation import write_conversations
from punie.records.task import write_tasks

__all__ = [
    "DEFAULT_LIMIT",
    "GeneratedTask",
    "GenerationReport",
    "generate_tasks",
    "generate_to_files",
]

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 400


def _tool_root(source: Path, name: str, snapshot_dir: Path | None) -> Path:
    """`source`, or a snapshot of it when the tools cannot see it in place."""
    if visible_to_tools(source):
        return source
    root = snapshot_repository(source, snapshot_dir or default_snapshot_dir(), name)
    if not visible_to_tools(root):
        raise DataError(
            f"grep cannot see the files of {str(root)!r} (a .gitignore above it hides them): "
            "pass --snapshot-dir outside any git-ignored folder"
        )
    return root


def generate_tasks(
    repo: Path,
    *,
    repo_name: str | None = None,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    snapshot_dir: Path | None = None,
    phrasing: str = "train",
    on_task: Callable[[], None] | None = None,
    extended_kinds: bool = False,
) -> tuple[list[GeneratedTask], GenerationReport]:
    """Up to `limit` grounded tasks from the Python repository at `repo`, deterministic per seed.

    A repository that the tools cannot see in place (an installed package in an ignored
    `.venv`) is first copied to `snapshot_dir`; the tasks then name that copy as their `repo`,
    so the evaluator runs the agent on exactly the tree the tasks were made from. `phrasing`
    names the question set: `train` for training and validation data, `held_out` for the eval.
    `extended_kinds` adds the extended kinds (`Kind.extended`) to training data.
    """
    started = time.perf_counter()
    phrases = phrasebook(phrasing)
    source = Path(repo).expanduser()
    if not source.is_dir():
        raise DataError(f"repository {str(source)!r} is not a folder: pass a source tree on disk")
    source = source.resolve()
    name = repo_name or source.name
    facts = scan_repository(_tool_root(source, name, snapshot_dir))
    report = GenerationReport(repo=str(facts.root), repo_name=name, seed=seed, phrasing=phrasing)
    tools = Toolbox(facts.root)
    ctx = BuildContext(
        facts=facts,
        tools=tools,
        rng=random.Random(seed),
        phrases=phrases,
        origin=Origin(str(facts.root), name, package_license(source, name)),
        by_name=facts.by_name(),
    )
    try:
        tasks = list(round_robin(ctx, limit, report, on_task, extended=extended_kinds))
    finally:
        tools.close()
    report.seconds = time.perf_counter() - started
    log.info("tasks_generated", repo=name, tasks=len(tasks), seconds=round(report.seconds, 2))
    return tasks, report


class GenerateOptions(TypedDict, total=False):
    """The keyword arguments of `generate_tasks`, which `generate_to_files` hands on."""

    repo_name: str | None
    limit: int
    seed: int
    snapshot_dir: Path | None
    phrasing: str
    on_task: Callable[[], None] | None
    extended_kinds: bool


def generate_to_files(
    repo: Path, out: Path, tasks_out: Path | None = None, **options: Unpack[GenerateOptions]
) -> GenerationReport:
    """Generate tasks and write the conversations (and the task specs) as JSONL, atomically."""
    tasks, report = generate_tasks(repo, **options)
    write_conversations(Path(out), (t.conversation for t in tasks))
    if tasks_out is not None:
        write_tasks(Path(tasks_out), (t.task for t in tasks))
    return report
