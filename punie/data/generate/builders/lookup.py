"""Single-tool lookups with grep and read_file: definitions, subclasses, imports, mentions,
parameters."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from punie.data.generate.builders.context import (
    ANY_PY_GLOB,
    WHOLE_REPO,
    BuildContext,
    listing,
)
from punie.data.generate.facts import Constant, Definition, ModuleImports
from punie.data.generate.record import Expectation, GeneratedTask, make_task
from punie.data.generate.results import grep_file_mark, grep_hit_mark, grep_hits, is_truncated
from punie.data.generate.toolbox import Skip, Step
from punie.records.task import TaskCategory


@dataclass(frozen=True)
class DefinitionLookup:
    """The grep that finds where a definition lives: the question, the real call, the answer
    and the patterns the evaluator accepts."""

    question: str
    step: Step
    answer: str
    accepted: list[str]


def function_lookup(ctx: BuildContext, d: Definition) -> DefinitionLookup:
    question = ctx.ask("find_function", name=d.name)
    pattern = f"def {d.name}[(]"
    step = ctx.definition_grep(pattern, d)
    answer = (
        f"`{d.name}` is defined in `{d.path}` at line {d.line}."
        if ctx.rng.random() < 0.5
        else f"The function `{d.name}` is defined on line {d.line} of `{d.path}`."
    )
    accepted = [
        pattern,
        rf"^(async )?def {d.name}\(",
        f"def {d.name}\\(",
        f"def {d.name}",
        f"def {d.name}\\b",
        d.name,
    ]
    return DefinitionLookup(question, step, answer, accepted)


def class_lookup(ctx: BuildContext, d: Definition) -> DefinitionLookup:
    question = ctx.ask("find_class", name=d.name)
    pattern = f"class {d.name}[(:]"
    step = ctx.definition_grep(pattern, d)
    answer = f"The class `{d.name}` is defined in `{d.path}` at line {d.line}."
    accepted = [
        pattern,
        rf"^class {d.name}\b",
        f"class {d.name}\\b",
        f"class {d.name}",
        f"^class {d.name}",
        d.name,
    ]
    return DefinitionLookup(question, step, answer, accepted)


def find_function(ctx: BuildContext, d: Definition) -> GeneratedTask:
    return definition_found(ctx, "find_function", d, function_lookup(ctx, d))


def find_class(ctx: BuildContext, d: Definition) -> GeneratedTask:
    return definition_found(ctx, "find_class", d, class_lookup(ctx, d))


def definition_found(
    ctx: BuildContext,
    kind: str,
    d: Definition,
    lookup: DefinitionLookup,
    *,
    category: TaskCategory = "single_tool",
    before: Sequence[Step] = (),
) -> GeneratedTask:
    """A task finding where `d` is defined: any accepted pattern, anywhere (after the steps
    `before` it, if any)."""
    expect = Expectation(
        "grep",
        {"pattern": lookup.accepted, "glob": ANY_PY_GLOB, "path": WHOLE_REPO},
        result_facts=(grep_hit_mark(d.path, d.line),),
    )
    steps = [*before, lookup.step]
    return make_task(
        ctx.origin,
        kind,
        category,
        lookup.question,
        steps,
        lookup.answer,
        expect,
        [d.path, str(d.line)],
    )


def subclasses(ctx: BuildContext, base: str) -> GeneratedTask:
    subs = sorted(ctx.facts.subclasses()[base], key=lambda d: (d.path, d.line))
    question = ctx.ask("subclasses", base=base)
    step = ctx.tools.ok("grep", {"pattern": f"class .*[(, ]{base}[),]", "glob": "*.py"})
    if is_truncated(step.result):
        raise Skip("result_truncated")
    if sorted(grep_hits(step.result)) != sorted((d.path, d.line) for d in subs):
        raise Skip("grep_disagrees_with_ast")
    places = [f"`{d.name}` ({d.path}, line {d.line})" for d in subs]
    if len(subs) == 1:
        answer = f"One class inherits from `{base}`: {places[0]}."
    else:
        answer = f"{len(subs)} classes inherit from `{base}`: " + "; ".join(places) + "."
    expect = Expectation(
        "grep",
        {"glob": ANY_PY_GLOB, "path": WHOLE_REPO},
        free=("pattern",),
        result_facts=tuple(grep_hit_mark(d.path, d.line) for d in subs),
    )
    return make_task(
        ctx.origin,
        "subclasses",
        "single_tool",
        question,
        [step],
        answer,
        expect,
        [d.name for d in subs],
    )


def module_imports(ctx: BuildContext, imports: ModuleImports) -> GeneratedTask:
    path = imports.path
    question = ctx.ask("module_imports", path=path)
    step = ctx.tools.ok("grep", {"pattern": "import ", "path": path})
    if is_truncated(step.result):
        raise Skip("result_truncated")
    if any(m not in step.result for m in imports.modules):
        raise Skip("grep_disagrees_with_ast")
    modules = list(imports.modules)
    noun = "module" if len(modules) == 1 else "modules"
    answer = f"`{path}` imports {len(modules)} {noun}: {listing(modules)}."
    expect = Expectation(
        "grep",
        {"path": [path, f"./{path}"], "glob": ANY_PY_GLOB},
        free=("pattern",),
        result_facts=tuple(modules),
    )
    return make_task(
        ctx.origin, "module_imports", "single_tool", question, [step], answer, expect, modules
    )


def files_mentioning(ctx: BuildContext, word: str) -> GeneratedTask:
    question = ctx.ask("files_mentioning", word=word)
    step = ctx.tools.ok("grep", {"pattern": word})
    if is_truncated(step.result):
        raise Skip("result_truncated")
    files = sorted({p for p, _ in grep_hits(step.result)})
    if files != sorted(ctx.facts.files_containing(word)):
        raise Skip("grep_disagrees_with_files")
    answer = f"`{word}` appears in {len(files)} files: {listing(files)}."
    expect = Expectation(
        "grep",
        {"pattern": [word, rf"\b{word}\b", re.escape(word)], "path": WHOLE_REPO},
        result_facts=tuple(grep_file_mark(f) for f in files),
    )
    return make_task(
        ctx.origin, "files_mentioning", "single_tool", question, [step], answer, expect, files
    )


def params_answer(d: Definition) -> tuple[str, str]:
    """(`Owner.name` or `name`, the sentence listing its parameters)."""
    label = f"{d.owner}.{d.name}" if d.owner else d.name
    noun = "parameter" if len(d.params) == 1 else "parameters"
    return label, f"`{label}` takes {len(d.params)} {noun}: {listing(list(d.params))}."


def signature_read(ctx: BuildContext, d: Definition) -> Step:
    """read_file over a definition's first lines; every parameter must show."""
    end = min(d.end_line, d.line + 15)
    step = ctx.tools.ok("read_file", {"path": d.path, "start_line": d.line, "end_line": end})
    if any(not re.search(rf"\b{re.escape(p)}\b", step.result) for p in d.params):
        raise Skip("read_disagrees_with_ast")
    return step


def signature_facts(d: Definition) -> tuple[str, ...]:
    """What a read of the signature holds: the `def` and every parameter name."""
    return (f"def {d.name}", *d.params)


def parameters(ctx: BuildContext, d: Definition) -> GeneratedTask:
    label, answer = params_answer(d)
    question = ctx.ask("parameters", label=label, path=d.path, line=d.line)
    step = signature_read(ctx, d)
    expect = Expectation(
        "read_file",
        {"path": [d.path, f"./{d.path}"]},
        free=("start_line", "end_line"),
        result_facts=signature_facts(d),
    )
    return make_task(
        ctx.origin, "parameters", "single_tool", question, [step], answer, expect, list(d.params)
    )


def constant_value(ctx: BuildContext, c: Constant) -> GeneratedTask:
    """The value of a module-level constant, read off the grep line that sets it."""
    question = ctx.ask("constant_value", name=c.name)
    arguments: dict[str, object] = {"pattern": f"^{c.name} *[:=]"}
    if ctx.rng.random() < 0.5:
        arguments["glob"] = "*.py"
    step = ctx.tools.ok("grep", arguments)
    if grep_hits(step.result) != [(c.path, c.line)] or c.value not in step.result:
        raise Skip("grep_disagrees_with_ast")
    answer = f"`{c.name}` is `{c.value}`; it is set in `{c.path}` at line {c.line}."
    expect = Expectation(
        "grep",
        {
            "pattern": [
                arguments["pattern"],
                f"^{c.name} =",
                f"^{c.name}",
                f"{c.name} =",
                f"{c.name} *=",
                c.name,
            ],
            "glob": ANY_PY_GLOB,
            "path": WHOLE_REPO,
        },
        result_facts=(grep_hit_mark(c.path, c.line),),
    )
    return make_task(
        ctx.origin, "constant_value", "single_tool", question, [step], answer, expect, [c.value]
    )
