"""Read a traces file and list each run's tool calls.

    uv run python examples/list_tool_calls.py [TRACES.jsonl]

Each line of a traces file is a `RunOutcome`; its `tool_calls` hold every call as it happened.
"""

from __future__ import annotations

import sys
from pathlib import Path

from punie.errors import PunieError
from punie.records.trace import read_traces
from punie.runtime.session import default_trace_path


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default_trace_path()
    try:
        outcomes = list(read_traces(path))
    except PunieError as exc:
        sys.exit(f"error: {exc}")
    for outcome in outcomes:
        print(f"{outcome.run_id} {outcome.status.value:18} {outcome.question[:60]!r}")
        for call in outcome.tool_calls:
            mark = "ok " if call.error is None else "err"
            took = f"{call.duration_ms:.0f} ms"
            print(f"    [{mark}] step {call.step} {call.name}({call.arguments}) {took}")
        print(f"    answer: {outcome.output!r}")


if __name__ == "__main__":
    main()
