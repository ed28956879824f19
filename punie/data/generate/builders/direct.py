"""Direct answers: small Python expressions the model should answer without a tool."""

from __future__ import annotations

import random

from punie.data.generate.builders.context import BuildContext
from punie.data.generate.record import Expectation, GeneratedTask, make_task

_BUILTINS = {
    "len": len,
    "sorted": sorted,
    "max": max,
    "min": min,
    "sum": sum,
    "list": list,
    "range": range,
    "int": int,
    "bool": bool,
}


def expression(rng: random.Random) -> tuple[str, str]:
    """A Python expression from a template and seeded numbers, and how to ask about it
    (`value`, `evaluate`, `return` or `print`)."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    word = rng.choice(["punie", "python", "agent", "lambda", "kernel", "tensor", "parser"])
    items = [rng.randint(0, 20) for _ in range(rng.randint(3, 6))]
    templates = [
        (f"{a} * {b}", "value"),
        (f"{a} + {b} * {c}", "value"),
        (f"{a * b} // {c}", "evaluate"),
        (f"{a} % {c}", "evaluate"),
        (f"2 ** {c + 3}", "value"),
        (f"len('{word}')", "return"),
        (f"sorted({items})", "return"),
        (f"'{word}'.upper()", "print"),
        (f"'{word}'[::-1]", "evaluate"),
        (f"list(range({c}))", "return"),
        (f"max({items}) - min({items})", "evaluate"),
        (f"sum({items})", "print"),
        (f"'{word}'.split('{word[1]}')", "return"),
        (f"{items}[-2:]", "evaluate"),
        (f"bool({items[:0]})", "return"),
        (f"int('{a}') + {b}", "print"),
    ]
    return templates[rng.randrange(len(templates))]


def direct_answer(ctx: BuildContext, index: int) -> GeneratedTask:
    expr, form = expression(ctx.rng)
    # The expressions are built above from fixed templates and seeded numbers; real Python
    # computes the answer rather than a hard-coded table.
    value = eval(expr, {"__builtins__": _BUILTINS})
    question = ctx.ask(f"direct_{form}", expr=expr)
    shown = repr(value)
    if form == "print":
        shown = str(value)
        answer = f"It prints `{shown}`."
    elif form == "value":
        answer = f"{expr} = {shown}."
    else:
        answer = f"`{expr}` evaluates to `{shown}`."
    return make_task(
        ctx.origin, "direct_answer", "direct_answer", question, [], answer, Expectation(), [shown]
    )
