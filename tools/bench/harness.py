"""Per-step overhead of Punie's run loop against a bare pydantic-ai agent, one scripted model.

Both agents get the same scripted model (a `FunctionModel` that greps N times, then answers)
and the same real tool (ripgrep on this repository). Punie adds reply recovery, the guards, the
tracker and a flushed trace line per run. Prints the time per step of each and their ratio.

    uv run python tools/bench/harness.py [--steps 8] [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anyio
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from rich.console import Console
from rich.table import Table

from punie.logs import configure_logging
from punie.records.profile import resolve_profile
from punie.records.trace import TraceWriter
from punie.runtime.agent import ToolDeps, create_agent
from punie.runtime.guards import Budgets
from punie.runtime.runner import RunTarget, run_agent
from punie.runtime.tools import Workspace, grep

ROOT = Path(__file__).resolve().parent.parent


def scripted(steps: int) -> FunctionModel:
    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        done = sum(
            isinstance(p, ToolReturnPart)
            for m in messages
            if isinstance(m, ModelRequest)
            for p in m.parts
        )
        if done < steps:
            return ModelResponse(parts=[ToolCallPart("grep", {"pattern": f"def run_agent|{done}"})])
        return ModelResponse(parts=[TextPart("run_agent is in punie/runner.py.")])

    return FunctionModel(model)


async def time_bare(steps: int, runs: int) -> list[float]:
    agent = Agent(scripted(steps), deps_type=Workspace, output_type=str)
    agent.tool(name="grep")(_bare_grep)
    ws = Workspace(ROOT / "punie")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await agent.run("Where is run_agent?", deps=ws)
        times.append((time.perf_counter() - t0) / (steps + 1))
    return times


def _bare_grep(ctx: RunContext[Workspace], pattern: str, path: str = ".") -> str:
    return grep(ctx.deps, pattern, path)


async def time_punie(steps: int, runs: int, trace_dir: Path) -> list[float]:
    profile = resolve_profile("qwen2.5-coder")
    agent = create_agent(profile, model=scripted(steps))
    trace = TraceWriter(trace_dir / "traces.jsonl")
    target = RunTarget(model="scripted", profile=profile)
    budgets = Budgets(max_requests=steps + 2, max_tool_calls=steps + 1, repeat_limit=steps + 1)
    times = []
    for _ in range(runs):
        deps = ToolDeps.for_repo(ROOT / "punie")
        t0 = time.perf_counter()
        outcome = await run_agent(
            agent, "Where is run_agent?", deps, target, budgets=budgets, trace=trace
        )
        times.append((time.perf_counter() - t0) / (steps + 1))
        assert outcome.status.value == "answered", outcome.reason
    return times


async def main_async(steps: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # Interleave so both see the same machine load.
        bare: list[float] = []
        punie: list[float] = []
        await time_bare(steps, 2)
        await time_punie(steps, 2, Path(tmp))
        for _ in range(runs):
            bare += await time_bare(steps, 1)
            punie += await time_punie(steps, 1, Path(tmp))
    b, p = statistics.median(bare), statistics.median(punie)
    table = Table(title=f"Run-loop overhead per step ({steps} tool steps + answer, {runs} runs)")
    table.add_column("harness")
    table.add_column("median ms/step", justify="right")
    table.add_row("bare pydantic-ai agent", f"{b * 1000:.2f}")
    table.add_row("Punie run loop", f"{p * 1000:.2f}")
    table.add_row("ratio Punie / bare", f"{p / b:.3f}  (target < 1.10)")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    configure_logging(level="WARNING")  # as the CLI runs: no per-event console output
    anyio.run(main_async, args.steps, args.runs)


if __name__ == "__main__":
    main()
