"""Scores of single runs and the metrics over many: what the eval report shows per category.

A run is scored on its *first* tool call as the model wrote it (the raw arguments of the
model's reply, before pydantic-ai coerced `"3"` into 3), the way BFCL scores a call:

- tool selection is right when the first call names the task's expected tool, or, for a task
  that expects no tool (direct answer, cannot answer, ask back), when the run calls none;
- arguments are right when that first call passes `check_call` (tool tasks only): the strict
  verdict; the executed verdict (`check_executed`) judges the values by the call's real result
  (what the tool answered in the run, on a fresh copy of the task's repository): right when it
  holds the task's result facts, whatever the strict verdict;
- the answer is right when the run ended `answered` and the answer holds every required fact;
- a run *passed* when it ended `answered`, generated nothing after the end of any turn, and its
  tool selection, arguments (strict) and answer are all right; only such runs are fed back into
  training by the verified harvest. `passed_executed` is the same with the executed verdict.

Every rate comes with its Wilson 95% interval and the number of tasks it is over (`rates`).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from punie.evaluation.checks import check_call, check_executed, missing_facts
from punie.evaluation.intervals import RateInterval, rate_interval
from punie.evaluation.overrun import TokenCounter, run_invented_turns, run_overrun
from punie.evaluation.suite import CATEGORIES
from punie.records.task import TaskSpec
from punie.records.trace import RunOutcome, RunStatus


class RunScore(BaseModel):
    """One run of one task, scored; a line of the results JSONL."""

    run_id: str
    task_id: str
    label: str
    category: str
    repo_name: str
    status: RunStatus
    passed: bool
    terminated: bool
    """Ended `answered` within its budgets."""
    tool_selection_ok: bool
    arguments_ok: bool | None
    """The strict (BFCL) verdict; None for tasks that expect no tool."""
    arguments_executed_ok: bool | None = None
    """The executed verdict (see the module docstring); None for tasks that expect no tool."""
    passed_executed: bool = False
    answer_ok: bool
    first_tool: str | None
    argument_errors: list[str] = Field(default_factory=list)
    executed_errors: list[str] = Field(default_factory=list)
    missing_facts: list[str] = Field(default_factory=list)
    turns: int
    tool_calls: int
    output_tokens: int
    tokens_after_end: int
    invented_turns: int = 0
    """Replies that wrote the next turn's role header after their end (`overrun`)."""
    duration_s: float
    reason: str | None = None


class Metrics(BaseModel):
    """Rates and means over a set of scored runs."""

    runs: int
    termination_rate: float
    loop_rate: float
    degenerate_rate: float
    tool_selection_accuracy: float
    argument_accuracy: float | None
    """Strict verdict, over tool tasks only; None when there are none."""
    argument_accuracy_executed: float | None = None
    """Executed verdict, over tool tasks only; None when there are none."""
    tool_call_rate: float | None = None
    """Share of tool tasks whose run called any tool; None when there are none."""
    answer_accuracy: float
    pass_rate: float
    pass_rate_executed: float = 0.0
    clean_stop_rate: float
    """Ended `answered` with nothing generated after the end of the turn."""
    invented_turn_rate: float = 0.0
    """Share of runs with a reply that went on to write another turn's role header."""
    turns_per_task: float
    output_tokens_per_task: float
    tokens_after_end_per_task: float
    rates: dict[str, RateInterval] = Field(default_factory=dict)
    """Per rate field: the rate, its Wilson 95% interval and the number of tasks it is over."""


def first_call(outcome: RunOutcome) -> tuple[str, dict[str, Any]] | None:
    """The run's first tool call as the model wrote it: (name, raw arguments), or None."""
    for call in outcome.tool_calls:
        return call.name, dict(call.arguments)
    return None


def first_call_result(outcome: RunOutcome) -> str | None:
    """What the tool answered to the run's first call (None when it did not run or failed)."""
    for call in outcome.tool_calls:
        return call.result if call.executed else None
    return None


def score_run(
    task: TaskSpec,
    outcome: RunOutcome,
    *,
    label: str,
    markers: Sequence[str],
    counter: TokenCounter,
    schemas: Mapping[str, Mapping[str, Any]],
) -> RunScore:
    """Score one finished run of `task`.

    `markers` are the model's end-of-turn markers and leaked role headers (its profile's
    `cut_markers`); `schemas` maps tool names to their parameters' JSON schema.
    """
    call = first_call(outcome)
    terminated = outcome.status is RunStatus.ANSWERED
    errors: list[str] = []
    executed_errors: list[str] = []
    arguments_ok: bool | None = None
    executed_ok: bool | None = None
    if task.expected_tool is None:
        selection_ok = call is None
    else:
        selection_ok = call is not None and call[0] == task.expected_tool
        if call is None:
            arguments_ok = executed_ok = False
            errors = executed_errors = ["no tool was called"]
        else:
            schema = schemas.get(call[0])
            strict = check_call(
                call[0],
                call[1],
                expected_tool=task.expected_tool,
                expected_arguments=task.expected_arguments,
                optional_arguments=task.optional_arguments,
                schema=schema,
            )
            executed = check_executed(
                call[0],
                call[1],
                first_call_result(outcome),
                strict=strict,
                expected_tool=task.expected_tool,
                result_facts=task.result_facts,
                schema=schema,
            )
            arguments_ok, errors = strict.valid, list(strict.errors)
            executed_ok, executed_errors = executed.valid, list(executed.errors)
    missing = missing_facts(outcome.output, task.required_facts) if terminated else []
    answer_ok = terminated and not missing
    after_end = run_overrun(outcome, markers, counter)
    clean = terminated and after_end == 0 and selection_ok and answer_ok
    return RunScore(
        run_id=outcome.run_id,
        task_id=task.id,
        label=label,
        category=task.category,
        repo_name=task.repo_name,
        status=outcome.status,
        passed=clean and arguments_ok is not False,
        passed_executed=clean and executed_ok is not False,
        terminated=terminated,
        tool_selection_ok=selection_ok,
        arguments_ok=arguments_ok,
        arguments_executed_ok=executed_ok,
        answer_ok=answer_ok,
        first_tool=call[0] if call else None,
        argument_errors=errors,
        executed_errors=executed_errors,
        missing_facts=missing if terminated else list(task.required_facts),
        turns=len(outcome.exchanges),
        tool_calls=len(outcome.tool_calls),
        output_tokens=outcome.output_tokens,
        tokens_after_end=after_end,
        invented_turns=run_invented_turns(outcome.exchanges, markers),
        duration_s=outcome.duration_s,
        reason=outcome.reason,
    )


def _rate(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.fmean(values) if values else 0.0


def _flags(scores: Sequence[RunScore]) -> dict[str, list[bool]]:
    """Per rate field, one flag per task it is measured over."""
    tools = [s for s in scores if s.arguments_ok is not None]
    flags = {
        "termination_rate": [s.terminated for s in scores],
        "loop_rate": [s.status is RunStatus.LOOP_DETECTED for s in scores],
        "degenerate_rate": [s.status is RunStatus.DEGENERATE_OUTPUT for s in scores],
        "tool_selection_accuracy": [s.tool_selection_ok for s in scores],
        "argument_accuracy": [bool(s.arguments_ok) for s in tools],
        "argument_accuracy_executed": [bool(s.arguments_executed_ok) for s in tools],
        "tool_call_rate": [s.tool_calls > 0 for s in tools],
        "answer_accuracy": [s.answer_ok for s in scores],
        "pass_rate": [s.passed for s in scores],
        "pass_rate_executed": [s.passed_executed for s in scores],
        "clean_stop_rate": [s.terminated and s.tokens_after_end == 0 for s in scores],
        "invented_turn_rate": [s.invented_turns > 0 for s in scores],
    }
    return flags


TOOL_TASK_RATES = frozenset({"argument_accuracy", "argument_accuracy_executed", "tool_call_rate"})
"""Rates over tool tasks only: None when a set of runs has none."""


def summarize(scores: Sequence[RunScore]) -> Metrics:
    """The metrics over `scores` (rates in 0..1 with Wilson intervals, means per task)."""
    flags = _flags(scores)
    rates = {name: rate_interval(values) for name, values in flags.items()}
    values: dict[str, float | None] = {
        name: (None if name in TOOL_TASK_RATES and not flags[name] else _rate(flags[name]))
        for name in flags
    }
    return Metrics(
        runs=len(scores),
        **values,
        rates={name: r for name, r in rates.items() if values[name] is not None},
        turns_per_task=_mean(s.turns for s in scores),
        output_tokens_per_task=_mean(s.output_tokens for s in scores),
        tokens_after_end_per_task=_mean(s.tokens_after_end for s in scores),
    )


def metrics_by_category(scores: Sequence[RunScore]) -> dict[str, Metrics]:
    """Metrics per task category (in the suite's category order), then `overall`."""
    result = {
        category: summarize([s for s in scores if s.category == category])
        for category in CATEGORIES
        if any(s.category == category for s in scores)
    }
    result["overall"] = summarize(scores)
    return result
