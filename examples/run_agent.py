"""Ask Punie a question about a repository, on the embedded model (served for the run) or on
your server: `uv run python examples/run_agent.py [--base-url URL --model NAME] [QUESTION]`."""

import argparse
from pathlib import Path

import anyio

from punie.runtime.session import open_session

HERE = Path(__file__).parent
parser = argparse.ArgumentParser()
parser.add_argument("question", nargs="?", default="Which class inherits from Item?")
parser.add_argument("--repo", type=Path, default=HERE / "sample_repo")
parser.add_argument("--base-url")
parser.add_argument("--model")
args = parser.parse_args()

with open_session(args.model, base_url=args.base_url, trace_path=HERE / "traces.jsonl") as session:
    outcome = anyio.run(session.ask, args.question, args.repo)
print(outcome.status.value, outcome.output, [(c.name, c.arguments) for c in outcome.tool_calls])
