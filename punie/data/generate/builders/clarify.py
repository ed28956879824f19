"""Cannot-answer and ask-back tasks: a missing file or name, an ambiguous name, a vague request."""

from __future__ import annotations

from punie.data.generate.builders.context import BuildContext
from punie.data.generate.builders.multi_step import FREE_GREP
from punie.data.generate.record import Expectation, GeneratedTask, make_task
from punie.data.generate.results import grep_found_nothing, grep_hits
from punie.data.generate.toolbox import Skip
from punie.records.tool_result import ErrorKind

MISSING_NAMES: list[str] = [
    "helpers_legacy.py",
    "compat_old.py",
    "settings_local.py",
    "views.py",
    "models_v2.py",
    "old_api.py",
]


def missing_file(ctx: BuildContext, index: int) -> GeneratedTask:
    folders = sorted({p.rsplit("/", 1)[0] for p in ctx.facts.python_files if "/" in p})
    folder = ctx.rng.choice(folders) if folders else ""
    path = f"{folder}/{MISSING_NAMES[index]}" if folder else MISSING_NAMES[index]
    if (ctx.facts.root / path).exists():
        raise Skip("file_exists")
    question = ctx.ask("missing_file", path=path)
    step = ctx.tools.failing("read_file", {"path": path}, ErrorKind.NOT_FOUND)
    answer = (
        f"There is no file `{path}` in this repository, so I cannot say what it does. "
        "If it lives elsewhere, give me its path."
    )
    expect = Expectation("read_file", {"path": [path, f"./{path}"]})
    return make_task(
        ctx.origin, "missing_file", "cannot_answer", question, [step], answer, expect, [path]
    )


def missing_symbol(ctx: BuildContext, index: int) -> GeneratedTask:
    words = sorted(w for w in ctx.facts.identifiers() if w.isidentifier() and "_" not in w)
    if len(words) < 2:
        raise Skip("too_few_identifiers")
    name = f"{ctx.rng.choice(words).lower()}_{ctx.rng.choice(words).lower()}"
    if ctx.facts.files_containing(name):
        raise Skip("name_exists")
    question = ctx.ask("missing_symbol", name=name)
    step = ctx.tools.ok("grep", {"pattern": name})
    if not grep_found_nothing(step.result):
        raise Skip("grep_disagrees_with_files")
    answer = (
        f"Nothing in this repository is called `{name}`: grep finds no match for it, so it "
        "is not defined here. Check the spelling, or tell me where it should be."
    )
    # grep echoes a pattern that finds nothing: the search was for this name, not another.
    expect = Expectation("grep", free=FREE_GREP, result_facts=(name,))
    return make_task(
        ctx.origin, "missing_symbol", "cannot_answer", question, [step], answer, expect, [name]
    )


def ambiguous_name(ctx: BuildContext, name: str) -> GeneratedTask:
    defs = sorted(ctx.by_name[name], key=lambda d: (d.path, d.line))
    question = ctx.ask("ambiguous_name", name=name)
    step = ctx.tools.ok("grep", {"pattern": f"(def|class) {name}[(:]"})
    if sorted(grep_hits(step.result)) != [(d.path, d.line) for d in defs]:
        raise Skip("grep_disagrees_with_ast")
    places = [
        f"{d.owner + '.' if d.owner else ''}{d.name} in `{d.path}` (line {d.line})" for d in defs
    ]
    answer = (
        f"There are {len(defs)} definitions named `{name}`: "
        + "; ".join(places)
        + ". Which one do you mean?"
    )
    # The search must show every definition (`path:line`), or there is nothing to ask about.
    expect = Expectation(
        "grep", free=FREE_GREP, result_facts=tuple(f"{d.path}:{d.line}" for d in defs)
    )
    facts = [*sorted({d.path for d in defs}), "?"]
    return make_task(
        ctx.origin, "ask_back_ambiguous_name", "ask_back", question, [step], answer, expect, facts
    )


def vague_request(ctx: BuildContext, index: int) -> GeneratedTask:
    question, answer = ctx.phrases.vague[index]
    return make_task(
        ctx.origin, "ask_back_vague", "ask_back", question, [], answer, Expectation(), ["?"]
    )
