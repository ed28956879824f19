"""Scores of single runs and the metrics over many: what the eval report shows per category.

A run is scored on its *first* tool call as the model wrote it (the raw arguments of the
model's reply, before pydantic-ai coerced `"3"` into 3), the way BFCL scores a call:

- tool selection is right when the first call names the task's expected tool, or, for a task
  that expects no tool (direct answer, cannot answer, ask back), when the run calls none;
- arguments are right when that first call passes `check_call` (tool tasks only);
- the answer is right when the run ended `answered` and the answer holds every required fact;
- a run *passed* when it ended `answered` and its tool selection, arguments and answer are all
  right; only such runs are fed back into training by the verified harvest.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from punie.evaluation.checks import check_call, missing_facts
from punie.evaluation.overrun import TokenCounter, run_overrun
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
    """None for tasks that expect no tool."""
    answer_ok: bool
    first_tool: str | None
    argument_errors: list[str] = Field(default_factory=list)
    missing_facts: list[str] = Field(default_factory=list)
    turns: int
    tool_calls: int
    output_tokens: int
    tokens_after_end: int
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
    """Over tool tasks only; None when there are none."""
    tool_call_rate: float | None = None
    """Share of tool tasks whose run called any tool; None when there are none."""
    answer_accuracy: float
    pass_rate: float
    clean_stop_rate: float
    """Ended `answered` with nothing generated after the end of the turn."""
    turns_per_task: float
    output_tokens_per_task: float
    tokens_after_end_per_task: float


def first_call(outcome: RunOutcome) -> tuple[str, dict[str, Any]] | None:
    """The run's first tool call as the model wrote it: (name, raw arguments), or None."""
    for exchange in outcome.exchanges:
        for call in exchange.tool_calls:
            arguments = call.get("arguments")
            return str(call.get("name")), dict(arguments) if isinstance(arguments, dict) else {}
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
    if task.expected_tool is None:
        selection_ok = call is None
        arguments_ok: bool | None = None
    else:
        selection_ok = call is not None and call[0] == task.expected_tool
        if call is None:
            arguments_ok = False
            errors = ["no tool was called"]
        else:
            verdict = check_call(
                call[0],
                call[1],
                expected_tool=task.expected_tool,
                expected_arguments=task.expected_arguments,
                optional_arguments=task.optional_arguments,
                schema=schemas.get(call[0]),
            )
            arguments_ok, errors = verdict.valid, list(verdict.errors)
    missing = missing_facts(outcome.output, task.required_facts) if terminated else []
    answer_ok = terminated and not missing
    return RunScore(
        run_id=outcome.run_id,
        task_id=task.id,
        label=label,
        category=task.category,
        repo_name=task.repo_name,
        status=outcome.status,
        passed=terminated and selection_ok and arguments_ok is not False and answer_ok,
        terminated=terminated,
        tool_selection_ok=selection_ok,
        arguments_ok=arguments_ok,
        answer_ok=answer_ok,
        first_tool=call[0] if call else None,
        argument_errors=errors,
        missing_facts=missing if terminated else list(task.required_facts),
        turns=len(outcome.exchanges),
        tool_calls=sum(len(e.tool_calls) for e in outcome.exchanges),
        output_tokens=outcome.output_tokens,
        tokens_after_end=run_overrun(outcome.exchanges, markers, counter),
        duration_s=outcome.duration_s,
        reason=outcome.reason,
    )


def _rate(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.fmean(values) if values else 0.0


def summarize(scores: Sequence[RunScore]) -> Metrics:
    """The metrics over `scores` (rates in 0..1, means per task)."""
    tool_scores = [s for s in scores if s.arguments_ok is not None]
    return Metrics(
        runs=len(scores),
        termination_rate=_rate(s.terminated for s in scores),
        loop_rate=_rate(s.status is RunStatus.LOOP_DETECTED for s in scores),
        degenerate_rate=_rate(s.status is RunStatus.DEGENERATE_OUTPUT for s in scores),
        tool_selection_accuracy=_rate(s.tool_selection_ok for s in scores),
        argument_accuracy=_rate(bool(s.arguments_ok) for s in tool_scores) if tool_scores else None,
        tool_call_rate=_rate(s.tool_calls > 0 for s in tool_scores) if tool_scores else None,
        answer_accuracy=_rate(s.answer_ok for s in scores),
        pass_rate=_rate(s.passed for s in scores),
        clean_stop_rate=_rate(s.terminated and s.tokens_after_end == 0 for s in scores),
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
