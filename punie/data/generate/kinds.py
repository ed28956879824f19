"""The kinds of task, each with its category, its candidates (in a deterministic order) and its
builder, and the seeded round-robin over them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from punie.data.generate.builders import clarify, direct, files, lookup, multi_step, recovery
from punie.data.generate.builders.context import BuildContext
from punie.data.generate.record import GeneratedTask
from punie.data.generate.report import GenerationReport
from punie.data.generate.toolbox import Skip
from punie.records.task import TaskCategory

Builder = Callable[[BuildContext, Any], GeneratedTask]
DIRECT_ANSWER_CANDIDATES = 400
MISSING_SYMBOL_CANDIDATES = 40


@dataclass(frozen=True)
class Kind:
    """One kind of task: its name, category, candidates and builder."""

    name: str
    category: TaskCategory
    candidates: list[Any]
    build: Builder
    extended: bool = False
    """One of the extended kinds (constant values, a class's methods, recoveries from an invented
    tool, a bare command or a near-miss path): generated only when asked for, and never held out
    (the held-out set stays the one every recipe was measured on; a recovery from a model's own
    mistake, held out, is its lookup again)."""


def kinds(ctx: BuildContext) -> list[Kind]:
    """Every kind with its candidates from the repository's facts."""
    f = ctx.facts
    unique = [ds[0] for ds in ctx.by_name.values() if len(ds) == 1]

    def by_place(items: Any) -> list[Any]:
        return sorted(items, key=lambda d: (d.path, d.line))

    functions = by_place(d for d in unique if d.kind == "function" and len(d.name) >= 4)
    classes = by_place(d for d in unique if d.kind == "class")
    with_params = by_place(d for d in unique if d.kind in ("function", "method") and d.params)
    documented = [d for d in classes if d.docstring and len(d.docstring) <= 160]
    ambiguous = sorted(
        name
        for name, ds in ctx.by_name.items()
        if 2 <= len(ds) <= 4 and not name.startswith("__") and len(name) >= 4
    )
    bases = sorted(name for name, subs in f.subclasses().items() if 1 <= len(subs) <= 8)
    mentioned = sorted(w for w, where in f.identifiers().items() if 2 <= len(where) <= 6)
    folders = sorted([".", *f.folders])
    small_folders = [d for d in folders if 0 < len(ctx.ls(d)) <= 25]
    sized = [p for p in f.python_files if f.line_counts.get(p, 0) >= 8]
    importing = [m for m in f.imports if 1 <= len(m.modules) <= 12]
    writes = list(range(len(files.WRITE_PATHS)))
    constant_names = Counter(c.name for c in f.constants)
    constants = sorted(
        (c for c in f.constants if constant_names[c.name] == 1), key=lambda c: (c.path, c.line)
    )
    return [
        Kind("find_function", "single_tool", functions, lookup.find_function),
        Kind("find_class", "single_tool", classes, lookup.find_class),
        Kind("subclasses", "single_tool", bases, lookup.subclasses),
        Kind("module_imports", "single_tool", importing, lookup.module_imports),
        Kind("files_mentioning", "single_tool", mentioned, lookup.files_mentioning),
        Kind("read_lines", "single_tool", sized, files.read_lines),
        Kind("parameters", "single_tool", with_params, lookup.parameters),
        Kind("line_count", "single_tool", sized, files.line_count),
        Kind("count_python_files", "single_tool", folders, files.count_python_files),
        Kind("list_folder", "single_tool", small_folders, files.list_folder),
        Kind("write_file", "single_tool", writes, files.write_new_file),
        Kind("find_then_read_parameters", "multi_step", functions, multi_step.find_then_parameters),
        Kind("find_then_read_docstring", "multi_step", documented, multi_step.find_then_docstring),
        Kind(
            "direct_answer",
            "direct_answer",
            list(range(DIRECT_ANSWER_CANDIDATES)),
            direct.direct_answer,
        ),
        Kind(
            "missing_file",
            "cannot_answer",
            list(range(len(clarify.MISSING_NAMES))),
            clarify.missing_file,
        ),
        Kind(
            "missing_symbol",
            "cannot_answer",
            list(range(MISSING_SYMBOL_CANDIDATES)),
            clarify.missing_symbol,
        ),
        Kind("ask_back_ambiguous_name", "ask_back", ambiguous, clarify.ambiguous_name),
        Kind(
            "ask_back_vague",
            "ask_back",
            list(range(len(ctx.phrases.vague))),
            clarify.vague_request,
        ),
        Kind("recovery_bad_regex", "recovery", functions, recovery.recover_bad_regex),
        Kind("recovery_directory", "recovery", small_folders, recovery.recover_directory),
        Kind("constant_value", "single_tool", constants, lookup.constant_value, extended=True),
        Kind(
            "find_then_read_methods",
            "multi_step",
            classes,
            multi_step.find_then_methods,
            extended=True,
        ),
        Kind(
            "recovery_unknown_tool",
            "recovery",
            [*functions, *classes],
            recovery.recover_unknown_tool,
            extended=True,
        ),
        Kind(
            "recovery_near_miss_path",
            "recovery",
            sorted(f.python_files),
            recovery.near_miss_path,
            extended=True,
        ),
        Kind(
            "recovery_bare_command",
            "recovery",
            [*functions, *classes],
            recovery.recover_bare_command,
            extended=True,
        ),
    ]


def round_robin(
    ctx: BuildContext,
    limit: int,
    report: GenerationReport,
    on_task: Callable[[], None] | None = None,
    *,
    extended: bool = False,
) -> Iterator[GeneratedTask]:
    """One task per kind in turn, each kind's candidates in seeded order, up to `limit`; the
    extended kinds too when `extended` (never for the held-out wording)."""
    queues: list[tuple[Kind, Iterator[Any]]] = []
    extended = extended and ctx.phrases.name != "held_out"
    for kind in kinds(ctx):
        if kind.extended and not extended:
            continue
        order = list(kind.candidates)
        ctx.rng.shuffle(order)
        queues.append((kind, iter(order)))
    seen: set[str] = set()
    produced = 0
    while queues and produced < limit:
        for entry in list(queues):
            if produced >= limit:
                break
            kind, candidates = entry
            for candidate in candidates:
                try:
                    generated = kind.build(ctx, candidate)
                except Skip as skip:
                    report.skipped[skip.reason] += 1
                    continue
                if generated.task.question in seen:
                    report.skipped["duplicate_question"] += 1
                    continue
                seen.add(generated.task.question)
                report.kept[kind.name] += 1
                report.categories[kind.category] += 1
                produced += 1
                if on_task is not None:
                    on_task()
                yield generated
                break
            else:
                queues.remove(entry)
