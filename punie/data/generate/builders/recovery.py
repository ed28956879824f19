"""Recovery tasks: the first call fails for real (a bad regex, a folder read as a file, a tool
that does not exist, a bare word run as a command), the second one fixes it. The failed call is
context, never a target: the model learns the recovery, not the mistake."""

from __future__ import annotations

import re
import shlex
from dataclasses import replace

from punie.data.generate.builders.context import ANY_PY_GLOB, WHOLE_REPO, BuildContext, listing
from punie.data.generate.builders.lookup import class_lookup, definition_found, function_lookup
from punie.data.generate.facts import Definition
from punie.data.generate.record import Expectation, GeneratedTask, make_task
from punie.data.generate.results import (
    COMMAND_NOT_FOUND,
    command_exit_code,
    command_output,
    grep_hit_mark,
    grep_hits,
)
from punie.data.generate.toolbox import Skip, Step
from punie.records.tool_result import ErrorKind


def recover_bad_regex(ctx: BuildContext, d: Definition) -> GeneratedTask:
    needle = f"{d.name}("
    hits = sorted(
        (rel, number)
        for rel in ctx.facts.text_files
        for number, line in enumerate(ctx.facts.read_text(rel).split("\n"), start=1)
        if needle in line
    )
    if not 1 <= len(hits) <= 10:
        raise Skip("too_many_or_no_uses")
    question = ctx.ask("bad_regex", call=needle)
    first = ctx.tools.failing("grep", {"pattern": needle}, ErrorKind.BAD_PATTERN)
    first = replace(first, mistake=True)
    fixed = f"{d.name}[(]"
    second = ctx.tools.ok("grep", {"pattern": fixed})
    if sorted(grep_hits(second.result)) != hits:
        raise Skip("grep_disagrees_with_files")
    files = sorted({p for p, _ in hits})
    where = "; ".join(
        f"`{p}` (line{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls))})"
        for p in files
        for ls in [[n for q, n in hits if q == p]]
    )
    answer = f"`{needle})` appears on {len(hits)} line{'s' if len(hits) > 1 else ''}: {where}."
    expect = Expectation(
        "grep",
        {
            "pattern": list(dict.fromkeys([fixed, f"{d.name}\\(", re.escape(needle)])),
            "glob": ANY_PY_GLOB,
            "path": WHOLE_REPO,
        },
        result_facts=tuple(grep_hit_mark(p, n) for p, n in hits),
    )
    return make_task(
        ctx.origin,
        "recovery_bad_regex",
        "recovery",
        question,
        [first, second],
        answer,
        expect,
        files,
    )


def recover_directory(ctx: BuildContext, folder: str) -> GeneratedTask:
    if folder == ".":
        raise Skip("root_folder")
    entries = ctx.ls(folder)
    question = ctx.ask("read_folder", folder=folder)
    first = ctx.tools.failing("read_file", {"path": folder}, ErrorKind.IS_DIRECTORY)
    first = replace(first, mistake=True)
    q = shlex.quote(folder)
    second = ctx.tools.ok("run_command", {"command": f"ls {q}"})
    output = command_output(second.result)
    if output is None or sorted(output.split()) != entries:
        raise Skip("command_disagrees_with_files")
    answer = f"`{folder}` is a folder; it holds {len(entries)} entries: {listing(entries)}."
    expect = Expectation(
        "run_command",
        {"command": [f"ls {q}", f"ls {q}/", f"ls -la {q}"]},
        result_facts=tuple(entries),
    )
    return make_task(
        ctx.origin,
        "recovery_directory",
        "recovery",
        question,
        [first, second],
        answer,
        expect,
        entries,
    )


def recover_unknown_tool(ctx: BuildContext, d: Definition) -> GeneratedTask:
    """A definition lookup whose first call names a tool that does not exist (the symbol, a
    `find_` verb, the file: what small models invent), then the grep that finds it."""
    name = ctx.rng.choice([d.name, f"find_{d.name.lower()}", d.path])
    arguments = ctx.rng.choice([{"name": d.name}, {"path": d.path}, {"pattern": d.name}])
    return _after_mistake(ctx, "recovery_unknown_tool", d, ctx.tools.unknown_tool(name, arguments))


def recover_bare_command(ctx: BuildContext, d: Definition) -> GeneratedTask:
    """A definition lookup whose first call runs the bare symbol as a shell command (exit 127),
    then the grep that finds it."""
    first = ctx.tools.call("run_command", {"command": shlex.quote(d.name)})
    if first.error or command_exit_code(first.result) != COMMAND_NOT_FOUND:
        raise Skip("expected_error_missing")
    return _after_mistake(ctx, "recovery_bare_command", d, first)


def _after_mistake(ctx: BuildContext, kind: str, d: Definition, mistake: Step) -> GeneratedTask:
    """The definition lookup of `d`, with `mistake` (out of the loss) before its grep."""
    lookup = class_lookup(ctx, d) if d.kind == "class" else function_lookup(ctx, d)
    before = [replace(mistake, mistake=True)]
    return definition_found(ctx, kind, d, lookup, category="recovery", before=before)


def near_miss_path(ctx: BuildContext, path: str) -> GeneratedTask:
    """The user names a file one letter off (`loan.py` for `loans.py`): the read fails, a look
    at the folder finds the real file, and a grep of it answers which classes it defines."""
    folder, _, name = path.rpartition("/")
    stem = name.removesuffix(".py")
    near_stem = stem[:-1] if stem.endswith("s") and len(stem) > 3 else f"{stem}s"
    near = f"{folder}/{near_stem}.py" if folder else f"{near_stem}.py"
    if (ctx.facts.root / near).exists():
        raise Skip("near_name_exists")
    classes = [d for d in ctx.facts.definitions if d.kind == "class" and d.path == path]
    if not 1 <= len(classes) <= 5:
        raise Skip("too_many_or_no_classes")
    question = ctx.ask("near_miss_path", path=near)
    first = ctx.tools.failing("read_file", {"path": near}, ErrorKind.NOT_FOUND)
    second = ctx.tools.ok(
        "run_command", {"command": f"ls {shlex.quote(folder)}" if folder else "ls"}
    )
    listed = command_output(second.result)
    if listed is None or name not in listed.split():
        raise Skip("command_disagrees_with_files")
    third = ctx.tools.ok("grep", {"pattern": "^class ", "path": path})
    if grep_hits(third.result) != [(d.path, d.line) for d in classes]:
        raise Skip("grep_disagrees_with_ast")
    names = [d.name for d in classes]
    noun = "class" if len(names) == 1 else "classes"
    answer = (
        f"There is no `{near}`; the folder holds `{path}`, which defines "
        f"{len(names)} {noun}: {listing(names)}."
    )
    expect = Expectation("read_file", {"path": [near, f"./{near}"]})
    steps = [first, second, third]
    return make_task(
        ctx.origin, "recovery_near_miss_path", "recovery", question, steps, answer, expect, names
    )
