"""Single-tool facts about files and folders: lines, line counts, file counts, listings,
writing a new file."""

from __future__ import annotations

import shlex

from punie.data.generate.builders.context import BuildContext, listing
from punie.data.generate.record import Expectation, GeneratedTask, make_task
from punie.data.generate.results import command_output
from punie.data.generate.toolbox import Skip

WRITE_PATHS: list[tuple[str, str]] = [
    ("notes/todo.txt", "- write the release notes\n- check the changelog\n"),
    ("scratch/hello.py", 'print("hello from punie")\n'),
    ("docs/NOTES.md", "# Notes\n\nThings to look at next.\n"),
    ("tmp/output.txt", "done\n"),
    ("scripts/check.sh", "#!/usr/bin/env bash\nset -euo pipefail\npython -m pytest -q\n"),
    ("data/sample.csv", "name,count\nalpha,1\nbeta,2\n"),
    ("CONTRIBUTORS.txt", "Ada Lovelace\nGrace Hopper\n"),
    ("config/settings.toml", '[tool]\nname = "demo"\nverbose = true\n'),
]


def read_lines(ctx: BuildContext, path: str) -> GeneratedTask:
    lines = ctx.facts.read_text(path).split("\n")
    total = ctx.facts.line_counts[path]
    start = ctx.rng.randint(1, max(1, total - 5))
    end = min(total, start + ctx.rng.randint(0, 5))
    shown = lines[start - 1 : end]
    if not any(s.strip() for s in shown) or any(len(s) > 200 for s in shown):
        raise Skip("blank_or_long_lines")
    if start == end:
        question = ctx.ask("read_line", line=start, path=path)
    else:
        question = ctx.ask("read_range", start=start, end=end, path=path)
    step = ctx.tools.ok("read_file", {"path": path, "start_line": start, "end_line": end})
    if step.result != "".join(s + "\n" for s in shown):
        raise Skip("read_disagrees_with_file")
    body = "\n".join(shown)
    where = f"Line {start}" if start == end else f"Lines {start}-{end}"
    answer = f"{where} of `{path}`:\n```python\n{body}\n```"
    stripped = [s.strip() for s in shown if s.strip()]
    facts = [stripped[0], stripped[-1]] if len(stripped) > 1 else stripped
    expect = Expectation(
        "read_file",
        {"path": [path, f"./{path}"], "start_line": [start], "end_line": [end]},
        result_facts=tuple(facts),
    )
    return make_task(
        ctx.origin, "read_lines", "single_tool", question, [step], answer, expect, facts
    )


def line_count(ctx: BuildContext, path: str) -> GeneratedTask:
    n = ctx.facts.line_counts[path]
    question = ctx.ask("line_count", path=path)
    q = shlex.quote(path)
    step = ctx.tools.ok("run_command", {"command": f"wc -l {q}"})
    if (command_output(step.result) or "").strip() != f"{n} {path}":
        raise Skip("command_disagrees_with_file")
    answer = f"`{path}` has {n} lines."
    expect = Expectation(
        "run_command",
        {"command": [f"wc -l {q}", f"wc -l < {q}", f"cat {q} | wc -l"]},
        result_facts=(str(n),),
    )
    return make_task(
        ctx.origin, "line_count", "single_tool", question, [step], answer, expect, [str(n)]
    )


def count_python_files(ctx: BuildContext, folder: str) -> GeneratedTask:
    if folder == ".":
        n = len(ctx.facts.python_files)
        question = ctx.ask("count_python_root")
        answer = f"The repository has {n} Python files."
    else:
        n = sum(p.startswith(folder + "/") for p in ctx.facts.python_files)
        question = ctx.ask("count_python_folder", folder=folder)
        answer = f"`{folder}` holds {n} Python files, subfolders included."
    if n == 0:
        raise Skip("no_python_files")
    q = shlex.quote(folder)
    step = ctx.tools.ok("run_command", {"command": f"find {q} -name '*.py' | wc -l"})
    output = command_output(step.result)
    if output is None or output.strip().split("\n")[-1].strip() != str(n):
        raise Skip("command_disagrees_with_files")
    # Any command that prints the count is right; a listing or a count of another folder is not.
    expect = Expectation("run_command", free=("command",), result_facts=(str(n),))
    return make_task(
        ctx.origin, "count_python_files", "single_tool", question, [step], answer, expect, [str(n)]
    )


def list_folder(ctx: BuildContext, folder: str) -> GeneratedTask:
    entries = ctx.ls(folder)
    where = "the repository root" if folder == "." else f"`{folder}`"
    question = ctx.ask("list_folder", where=where)
    command = "ls" if folder == "." else f"ls {shlex.quote(folder)}"
    step = ctx.tools.ok("run_command", {"command": command})
    output = command_output(step.result)
    if output is None or sorted(output.split()) != entries:
        raise Skip("command_disagrees_with_files")
    answer = f"{where[0].upper()}{where[1:]} holds {len(entries)} entries: {listing(entries)}."
    # Any command whose output lists every entry is right (`ls`, `ls -la`, `find`).
    expect = Expectation("run_command", free=("command",), result_facts=tuple(entries))
    return make_task(
        ctx.origin, "list_folder", "single_tool", question, [step], answer, expect, entries
    )


def write_new_file(ctx: BuildContext, index: int) -> GeneratedTask:
    path, content = WRITE_PATHS[index]
    if (ctx.facts.root / path).exists():
        raise Skip("file_exists")
    question = ctx.ask("write_file", path=path, content=content)
    # Written in a scratch folder: installed packages must stay untouched, and write_file's
    # answer depends only on the relative path and the content.
    step = ctx.tools.ok("write_file", {"path": path, "content": content}, scratch=True)
    if (ctx.tools.scratch.root / path).read_text(encoding="utf-8") != content:
        raise Skip("write_not_read_back")
    lines = content.count("\n") + (0 if content.endswith("\n") else 1)
    answer = f"I created `{path}` ({lines} line{'s' if lines != 1 else ''})."
    expect = Expectation(
        "write_file",
        {"path": [path, f"./{path}"], "content": [content, content.rstrip("\n")]},
    )
    return make_task(
        ctx.origin, "write_file", "single_tool", question, [step], answer, expect, [path]
    )
