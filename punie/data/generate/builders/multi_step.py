"""Two-step tasks: find a definition with grep, then read it."""

from __future__ import annotations

import re

from punie.data.generate.builders.context import BuildContext, listing
from punie.data.generate.builders.lookup import params_answer, signature_read
from punie.data.generate.facts import Definition
from punie.data.generate.record import Expectation, GeneratedTask, make_task
from punie.data.generate.results import grep_hit_mark
from punie.data.generate.toolbox import Skip, Step

FREE_GREP = ("pattern", "glob", "path")
MAX_CLASS_LINES = 80
"""A class read whole for its methods stays this short (the eval caps a tool result at 4,000
characters)."""


def find_then_parameters(ctx: BuildContext, d: Definition) -> GeneratedTask:
    if not d.params:
        raise Skip("no_parameters")
    _, answer = params_answer(d)
    question = ctx.ask("find_then_parameters", name=d.name)
    first = ctx.definition_grep(f"def {d.name}[(]", d)
    second = signature_read(ctx, d)
    answer = f"{answer[:-1]}; it is defined in `{d.path}` at line {d.line}."
    steps = [first, second]
    facts = list(d.params)
    return _found_then_read(ctx, "find_then_read_parameters", d, question, steps, answer, facts)


def find_then_docstring(ctx: BuildContext, d: Definition) -> GeneratedTask:
    question = ctx.ask("find_then_docstring", name=d.name)
    first = ctx.definition_grep(f"class {d.name}[(:]", d)
    end = min(d.end_line, d.line + 12)
    second = ctx.tools.ok("read_file", {"path": d.path, "start_line": d.line, "end_line": end})
    if d.docstring is None or d.docstring not in second.result:
        raise Skip("read_disagrees_with_ast")
    answer = (
        f'`{d.name}` is defined in `{d.path}` (line {d.line}); its docstring says: "{d.docstring}"'
    )
    steps = [first, second]
    facts = [d.path, d.docstring]
    return _found_then_read(ctx, "find_then_read_docstring", d, question, steps, answer, facts)


def find_then_methods(ctx: BuildContext, d: Definition) -> GeneratedTask:
    """Find a class, read its whole body, and list its public methods."""
    methods = [m.name for m in ctx.facts.methods_of(d) if not m.name.startswith("_")]
    if not 2 <= len(methods) <= 8 or len(set(methods)) != len(methods):
        raise Skip("too_many_or_no_methods")
    if d.end_line - d.line >= MAX_CLASS_LINES:
        raise Skip("class_too_long")
    question = ctx.ask("find_then_methods", name=d.name)
    first = ctx.definition_grep(f"class {d.name}[(:]", d)
    second = ctx.tools.ok(
        "read_file", {"path": d.path, "start_line": d.line, "end_line": d.end_line}
    )
    if any(not re.search(rf"def {re.escape(m)}\(", second.result) for m in methods):
        raise Skip("read_disagrees_with_ast")
    noun = "public method" if len(methods) == 1 else "public methods"
    answer = (
        f"`{d.name}` (in `{d.path}`, line {d.line}) has {len(methods)} {noun}: {listing(methods)}."
    )
    steps = [first, second]
    return _found_then_read(ctx, "find_then_read_methods", d, question, steps, answer, methods)


def _found_then_read(
    ctx: BuildContext,
    kind: str,
    d: Definition,
    question: str,
    steps: list[Step],
    answer: str,
    facts: list[str],
) -> GeneratedTask:
    """A grep that must find `d` (any arguments), then the read that answers."""
    expect = Expectation("grep", free=FREE_GREP, result_facts=(grep_hit_mark(d.path, d.line),))
    return make_task(ctx.origin, kind, "multi_step", question, steps, answer, expect, facts)
