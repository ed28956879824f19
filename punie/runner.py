"""The run loop: a question through the agent, under budgets and guards, ending with a status.

Whatever ends the run (an answer, a budget, a loop, degenerate output, a model error, Ctrl-C),
the outcome with its partial transcript is appended to the traces file before control returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import platformdirs
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

from punie.agent import AgentSettings, ToolDeps, create_agent
from punie.guards import Budgets, GuardTripped, LoopDetector, RunStatus, find_degenerate_repeat
from punie.profiles import ModelProfile, resolve_profile, resolve_served_profile
from punie.reply_recovery import response_repair
from punie.tracker import ModelExchange, RunOutcome, ToolCallRecord, TraceWriter

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
    extra: dict[str, Any] = field(default_factory=dict)


async def run_agent(
    agent: Agent[ToolDeps, str],
    question: str,
    deps: ToolDeps,
    target: RunTarget,
    *,
    budgets: Budgets | None = None,
    trace: TraceWriter | None = None,
    hooks: RunHooks | None = None,
) -> RunOutcome:
    """Run one question to an explicit end and append its outcome to `trace`.

    Ctrl-C (or cancellation) still writes the trace line, then propagates.
    """
    budgets = budgets or Budgets()
    hooks = hooks or RunHooks()
    tracker = deps.tracker
    if hooks.on_tool_call is not None:
        tracker.listeners.append(hooks.on_tool_call)
    loop = LoopDetector(budgets.repeat_limit)
    if not deps.sandbox.available:
        log.warning("commands_not_sandboxed", reason=deps.sandbox.reason)
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
        status = RunStatus.BUDGET_EXHAUSTED
        reason = f"wall-clock budget of {budgets.max_seconds:g} s spent"
    except OutputTokenLimitExceeded as exc:
        status, reason = RunStatus.BUDGET_EXHAUSTED, f"reply hit its token limit: {exc.message}"
    except ModelAPIError as exc:
        status, reason = RunStatus.MODEL_ERROR, _model_error_line(exc, target)
    except UnexpectedModelBehavior as exc:
        where = target.base_url or target.model
        status, reason = RunStatus.MODEL_ERROR, f"model at {where} failed: {exc.message}"
    except (KeyboardInterrupt, anyio.get_cancelled_exc_class()) as exc:
        status, reason, interrupted = RunStatus.INTERRUPTED, "interrupted by the user", exc

    outcome = RunOutcome(
        run_id=tracker.run_id,
        status=status,
        output=output if status is RunStatus.ANSWERED else None,
        reason=reason,
        question=question,
        repo=str(deps.workspace.root),
        model=target.model,
        base_url=target.base_url,
        profile={
            "family": target.profile.family,
            "stop_sequences": list(target.profile.stop_sequences),
            "source": target.profile.source,
        },
        sandbox=deps.sandbox.kind if deps.sandbox.available else f"none ({deps.sandbox.reason})",
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
        tool_calls=[{"name": c.tool_name, "arguments": c.args_as_dict()} for c in calls],
        input_tokens=response.usage.input_tokens or 0,
        output_tokens=response.usage.output_tokens or 0,
        finish_reason=response.finish_reason,
        cut_at_marker=bool(repair.get("cut")),
        recovered_text_calls=int(repair.get("recovered_calls", 0)),
    )
    tracker.record_exchange(exchange)
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
            tracker.record_tool_call(
                ToolCallRecord(
                    step=tracker.step,
                    name=call.tool_name,
                    arguments=call.args_as_dict(),
                    error="not run: the same call was repeated too often in a row",
                    tool_call_id=call.tool_call_id,
                    executed=False,
                )
            )
            raise


def _model_error_line(exc: ModelAPIError, target: RunTarget) -> str:
    where = target.base_url or target.model
    status = getattr(exc, "status_code", None)
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if status is not None:
        return f"model server at {where} answered HTTP {status}: {detail}"
    return f"model server at {where} failed: {detail}"


def run_question(
    question: str,
    repo: Path,
    *,
    base_url: str | None = None,
    model: str | None = None,
    stop: Sequence[str] | None = None,
    adapter: Path | None = None,
    settings: AgentSettings | None = None,
    budgets: Budgets | None = None,
    trace_path: Path | None = None,
    hooks: RunHooks | None = None,
    use_trained_adapter: bool = True,
) -> RunOutcome:
    """Answer one question about `repo`: on the server at `base_url`, or on a local model served
    for this run and stopped afterwards: by default the embedded model with the newest adapter
    the loop trained for it (`punie demo` records it)."""
    deps = ToolDeps.for_repo(repo)
    trace = TraceWriter(trace_path or default_trace_path())
    if base_url is not None:
        name = model or "default_model"
        profile = resolve_served_profile(base_url, model, stop_override=stop)
        agent = create_agent(profile, base_url=base_url, model=name, settings=settings)
        target = RunTarget(model=name, profile=profile, base_url=base_url)
        return anyio.run(_run_once, agent, question, deps, target, budgets, trace, hooks)

    from punie.models.embedded import embedded_model_dir
    from punie.server import serve_model

    served = Path(model) if model else embedded_model_dir()
    if adapter is None and model is None and use_trained_adapter:
        from punie.adapters import latest_adapter

        adapter = latest_adapter(served)
    profile = resolve_profile(
        str(served), model_dir=served if served.is_dir() else None, stop_override=stop
    )
    with serve_model(served, adapter=adapter) as server:
        agent = create_agent(
            profile, base_url=server.base_url, model=server.request_model, settings=settings
        )
        target = RunTarget(model=str(served), profile=profile, base_url=server.base_url)
        return anyio.run(_run_once, agent, question, deps, target, budgets, trace, hooks)


async def _run_once(
    agent: Agent[ToolDeps, str],
    question: str,
    deps: ToolDeps,
    target: RunTarget,
    budgets: Budgets | None,
    trace: TraceWriter,
    hooks: RunHooks | None,
) -> RunOutcome:
    return await run_agent(agent, question, deps, target, budgets=budgets, trace=trace, hooks=hooks)


def default_trace_path() -> Path:
    """Where runs are traced unless told otherwise: the user's data folder."""
    return platformdirs.user_data_path("punie") / "traces.jsonl"
