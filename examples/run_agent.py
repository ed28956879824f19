"""Build a Punie agent with `create_agent` and run it on a repository.

    uv run python examples/run_agent.py                       # embedded model, served for the run
    uv run python examples/run_agent.py --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder

The result is a `RunOutcome`: `.status`, `.output` (the answer), `.tool_calls`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio

from punie.records.profile import resolve_profile
from punie.runtime.agent import AgentSettings, ToolDeps, create_agent
from punie.runtime.guards import Budgets
from punie.runtime.runner import RunTarget, run_agent
from punie.runtime.tracker import TraceWriter

HERE = Path(__file__).parent


async def ask(base_url: str, model: str, question: str, repo: Path, profile_model: str) -> None:
    profile = resolve_profile(profile_model)  # stop sequences for this model's chat format
    agent = create_agent(profile, base_url=base_url, model=model, settings=AgentSettings())
    outcome = await run_agent(
        agent,
        question,
        ToolDeps.for_repo(repo),
        RunTarget(model=model, profile=profile, base_url=base_url),
        budgets=Budgets(max_requests=6, max_seconds=120),
        trace=TraceWriter(HERE / "traces.jsonl"),
    )
    print(f"status: {outcome.status.value}")
    for call in outcome.tool_calls:
        print(f"  tool {call.name}({call.arguments}) -> {(call.result or call.error or '')[:80]!r}")
    print(f"answer: {outcome.output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="Which class inherits from Item?")
    parser.add_argument("--repo", type=Path, default=HERE / "sample_repo")
    parser.add_argument("--base-url")
    parser.add_argument("--model", default="qwen2.5-coder")
    args = parser.parse_args()
    if args.base_url:
        anyio.run(ask, args.base_url, args.model, args.question, args.repo, args.model)
        return
    from punie.mlx.embedded import embedded_model_dir
    from punie.mlx.server import serve_model

    folder = embedded_model_dir()
    with serve_model(folder) as server:  # a real mlx-lm server on 127.0.0.1, stopped on exit
        anyio.run(ask, server.base_url, server.request_model, args.question, args.repo, str(folder))


if __name__ == "__main__":
    main()
