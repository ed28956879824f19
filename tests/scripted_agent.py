"""Punie's run loop on a scripted model (a pydantic-ai `FunctionModel`), as the tests drive it:
the real agent and tools on a real repository, a real trace file."""

from __future__ import annotations

from pathlib import Path

from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart
from pydantic_ai.models.function import FunctionModel

from punie.records.profile import resolve_profile
from punie.records.trace import RunOutcome, TraceWriter
from punie.runtime.agent import ToolDeps, create_agent
from punie.runtime.guards import Budgets
from punie.runtime.runner import RunTarget, run_agent

PROFILE = resolve_profile("qwen2.5-coder")


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    """The tool results the model has been sent so far, oldest first."""
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


async def run_scripted(
    model: FunctionModel, question: str, repo: Path, trace: Path, budgets: Budgets | None = None
) -> RunOutcome:
    """One run of the agent with `model` on `repo`, its trace line appended to `trace`."""
    return await run_agent(
        create_agent(PROFILE, model=model),
        question,
        ToolDeps.for_repo(repo),
        RunTarget(model="scripted", profile=PROFILE),
        budgets=budgets,
        trace=TraceWriter(trace),
    )
