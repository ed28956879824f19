"""The real code tools, called the way the agent calls them, for the generator's conversations."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_ai.messages import ToolReturnPart

from punie.data.generate.results import error_kind, error_result
from punie.errors import ToolError
from punie.records.tool_result import ErrorKind
from punie.records.toolset import code_tool_schemas
from punie.runtime.tools import Workspace, grep, read_file, run_command, write_file

CODE_TOOL_NAMES = frozenset(t["function"]["name"] for t in code_tool_schemas())


class Skip(Exception):
    """A candidate whose tool results disagree with the facts (or cannot be asked); not kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Step:
    """One tool call the assistant makes and the real result it got."""

    name: str
    arguments: dict[str, Any]
    result: str
    """The tool's answer as the model sees it (a `ToolResult`: its kind and data ride along)."""
    error: bool = False
    mistake: bool = False
    """A call the model should not make, kept as the context of the recovery after it: its turn
    carries no loss (`Message.training` False)."""


class Toolbox:
    """Runs the code tools on a repository (writes go to a scratch folder, never the source)."""

    def __init__(self, root: Path) -> None:
        self.ws = Workspace(root)
        self._scratch = tempfile.TemporaryDirectory(prefix="punie-generate-")
        self.scratch = Workspace(Path(self._scratch.name))

    def close(self) -> None:
        self._scratch.cleanup()

    def call(self, name: str, arguments: dict[str, Any], *, scratch: bool = False) -> Step:
        """Run one tool; a ToolError becomes the `Error: ...` result the agent would hand back."""
        ws = self.scratch if scratch else self.ws
        try:
            if name == "grep":
                result = grep(ws, **arguments)
            elif name == "read_file":
                result = read_file(ws, **arguments)
            elif name == "run_command":
                result = run_command(ws, arguments["command"], timeout_s=30.0)
            elif name == "write_file":
                result = write_file(ws, arguments["path"], arguments["content"])
            else:
                raise ValueError(f"unknown tool {name}")
        except ToolError as exc:
            return Step(name, arguments, error_result(str(exc), exc.kind), error=True)
        return Step(name, arguments, result)

    def unknown_tool(self, name: str, arguments: dict[str, Any]) -> Step:
        """A call to a tool that does not exist, answered with the text pydantic-ai's agent hands
        the model (its unknown-tool retry, as the OpenAI request carries it)."""
        if name in CODE_TOOL_NAMES:
            raise ValueError(f"{name!r} is a real tool")
        offered = ", ".join(repr(n) for n in sorted(CODE_TOOL_NAMES))
        part = ToolReturnPart(
            tool_name=name,
            content=f"Unknown tool name: {name!r}. Available tools: {offered}",
            tool_call_id="unknown",
            outcome="retried",
        )
        return Step(name, arguments, part.model_response_str(), error=True)

    def failing(self, name: str, arguments: dict[str, Any], expected: ErrorKind) -> Step:
        """Run one tool that must fail for the `expected` reason; anything else skips."""
        step = self.call(name, arguments)
        if not (step.error and error_kind(step.result) == expected):
            raise Skip("expected_error_missing")
        return step

    def ok(self, name: str, arguments: dict[str, Any], **kwargs: Any) -> Step:
        """Run one tool that must succeed; a failure skips the candidate."""
        step = self.call(name, arguments, **kwargs)
        if step.error:
            raise Skip("tool_error")
        return step
