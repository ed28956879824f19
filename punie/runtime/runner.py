"""The run loop: a question through the agent, under budgets and guards, ending with a status.

Whatever ends the run (an answer, a budget, a loop, degenerate output, a model error, Ctrl-C),
the outcome with its partial transcript is appended to the traces file before control returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import structlog
from pydantic_ai import Agent
from pydantic_ai.exceptions import (
    ModelAPIError,
    OutputTokenLimitExceeded,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
)
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    TextPart,
    ToolCallPart,
)

from punie.records.profile import ModelProfile
from punie.records.trace import ModelExchange, RunOutcome, RunStatus, ToolCallRecord, TraceWriter
from punie.runtime.agent import ToolDeps
from punie.runtime.guards import Budgets, GuardTripped, LoopDetector, find_degenerate_repeat
from punie.runtime.recovery import response_repair

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunTarget:
    """What the run talks to, for the trace."""

    model: str
    profile: ModelProfile
    base_url: str | None = None


@dataclass
class RunHooks:
    """Callbacks for a live view of the run (the CLI prints with them)."""

    on_response: Callable[[ModelExchange], None] | None = None
    on_tool_call: Callable[[ToolCallRecord], None] | None = None


async def run_agent(
    agent: Agent[ToolDeps, str],
    question: str,
    deps: ToolDeps,
    target: RunTarget,
    *,
    budgets: Budgets | None = None,
    trace: TraceWriter | None = None,
    hooks: RunHooks | None = None,
    trace_repo: str | None = None,
) -> RunOutcome:
    """Run one question to an explicit end and append its outcome to `trace`.

    Ctrl-C (or cancellation) kills the run's commands, still writes the trace line (with the
    call in flight), then propagates. When the wall-clock budget is spent, running commands
    are killed at once, so the run ends on time. `trace_repo` names the repository in the
    outcome when the workspace is a throwaway copy of it.
    """
    budgets = budgets or Budgets()
    deps.output_limit = budgets.max_tool_output_chars
    hooks = hooks or RunHooks()
    tracker = deps.tracker
    if hooks.on_tool_call is not None:
        tracker.listeners.append(hooks.on_tool_call)
    loop = LoopDetector(budgets.repeat_limit)
    if not deps.sandbox.confining:
        log.warning("commands_not_sandboxed", kind=deps.sandbox.kind, reason=deps.sandbox.reason)
    budget_timer = threading.Timer(
        budgets.max_seconds, deps.commands.kill_all, args=("the run's time budget was spent",)
    )
    budget_timer.daemon = True
    budget_timer.start()
    messages: list[ModelMessage] = []
    status = RunStatus.ANSWERED
    output: str | None = None
    reason: str | None = None
    usage = (0, 0)
    interrupted: BaseException | None = None
    try:
        with anyio.fail_after(budgets.max_seconds):
            async with agent.iter(question, deps=deps, usage_limits=budgets.usage_limits()) as run:
                try:
                    async for node in run:
                        response = getattr(node, "model_response", None)
                        if isinstance(response, ModelResponse) and Agent.is_call_tools_node(node):
                            _inspect_response(response, deps, loop, hooks)
                    assert run.result is not None
                    output = run.result.output
                finally:
                    messages = run.all_messages()
                    run_usage = run.usage
                    usage = (run_usage.input_tokens or 0, run_usage.output_tokens or 0)
    except GuardTripped as exc:
        status, reason = exc.status, exc.reason
    except UsageLimitExceeded as exc:
        status, reason = RunStatus.BUDGET_EXHAUSTED, str(exc)
    except TimeoutError:
        # The safety net, not a budget of the model's: reported apart from budget_exhausted.
        status = RunStatus.TIMED_OUT
        reason = f"wall-clock safety net of {budgets.max_seconds:g} s reached"
    except OutputTokenLimitExceeded as exc:
        status, reason = RunStatus.BUDGET_EXHAUSTED, f"reply hit its token limit: {exc.message}"
    except ModelAPIError as exc:
        status, reason = RunStatus.MODEL_ERROR, _model_error_line(exc, target)
    except UnexpectedModelBehavior as exc:
        where = target.base_url or target.model
        status, reason = RunStatus.MODEL_ERROR, f"model at {where} failed: {exc.message}"
    except (KeyboardInterrupt, anyio.get_cancelled_exc_class()) as exc:
        deps.commands.kill_all("interrupted")
        reason = deps.stop_reason or "interrupted by the user"
        status, interrupted = RunStatus.INTERRUPTED, exc
    except Exception as exc:  # never lose the trace line, whatever broke
        log.exception("run_crashed")
        status = RunStatus.MODEL_ERROR
        reason = f"internal error: {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        budget_timer.cancel()
    if status is not RunStatus.ANSWERED:
        deps.commands.kill_all(reason or status.value)
        deps.flush_in_flight(reason or status.value)
    for call in tracker.tool_calls:
        if not call.executed and call.error is None:
            call.error = "not run (rejected arguments, an unknown tool, or the run ended first)"

    outcome = RunOutcome(
        run_id=tracker.run_id,
        status=status,
        output=output if status is RunStatus.ANSWERED else None,
        reason=reason,
        question=question,
        repo=trace_repo or str(deps.workspace.root),
        model=target.model,
        base_url=target.base_url,
        profile={
            "family": target.profile.family,
            "stop_sequences": list(target.profile.stop_sequences),
            "source": target.profile.source,
        },
        sandbox=deps.sandbox.describe(),
        started_at=tracker.started_at,
        duration_s=round(tracker.elapsed_s(), 3),
        tool_calls=list(tracker.tool_calls),
        exchanges=list(tracker.exchanges),
        transcript=ModelMessagesTypeAdapter.dump_python(messages, mode="json"),
        input_tokens=usage[0],
        output_tokens=usage[1],
    )
    if trace is not None:
        trace.append(outcome)
    log.info("run_finished", run_id=outcome.run_id, status=status.value, reason=reason)
    if interrupted is not None:
        raise interrupted
    return outcome


def _inspect_response(
    response: ModelResponse, deps: ToolDeps, loop: LoopDetector, hooks: RunHooks
) -> None:
    """Record a model response and apply the loop and degenerate-output guards to it."""
    tracker = deps.tracker
    text = "".join(p.content for p in response.parts if isinstance(p, TextPart))
    calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
    repair = response_repair(response)
    exchange = ModelExchange(
        step=tracker.step + 1,
        text=text,
        tool_call_ids=[c.tool_call_id for c in calls],
        input_tokens=response.usage.input_tokens or 0,
        output_tokens=response.usage.output_tokens or 0,
        finish_reason=response.finish_reason,
        cut_at_marker=bool(repair.get("cut")),
        recovered_text_calls=int(repair.get("recovered_calls", 0)),
    )
    tracker.record_exchange(exchange)
    for call in calls:
        tracker.ask_for_call(
            ToolCallRecord(
                step=exchange.step,
                name=call.tool_name,
                arguments=call.args_as_dict(),
                tool_call_id=call.tool_call_id,
            )
        )
    if hooks.on_response is not None:
        hooks.on_response(exchange)
    if response.finish_reason == "length" and not calls and not exchange.cut_at_marker:
        raise GuardTripped(
            RunStatus.BUDGET_EXHAUSTED,
            f"reply hit its token limit ({exchange.output_tokens} tokens) before its turn ended",
        )
    unit = find_degenerate_repeat(text)
    if unit is not None:
        raise GuardTripped(RunStatus.DEGENERATE_OUTPUT, f"output repeats {unit!r} over and over")
    for call in calls:
        try:
            loop.observe(call.tool_name, call.args_as_dict())
        except GuardTripped:
            record = tracker.asked_call(call.tool_call_id)
            if record is not None:
                record.error = "not run: the same call was repeated too often in a row"
                tracker.record_tool_call(record)
            raise


def _model_error_line(exc: ModelAPIError, target: RunTarget) -> str:
    where = target.base_url or target.model
    status = getattr(exc, "status_code", None)
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if status is not None:
        return f"model server at {where} answered HTTP {status}: {detail}"
    return f"model server at {where} failed: {detail}"
