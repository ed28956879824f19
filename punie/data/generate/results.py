"""How the generator reads the code tools' answers: by their kind and data, never their wording.

The tools return `ToolResult`s (text for the model, with `kind` and `data`) and raise
`ToolError`s with a `kind`; the toolbox keeps both on each step. Only the grep-line marks below
describe the rendered text, because the executed verdict looks for them in a run's results.
"""

from __future__ import annotations

from punie.records.tool_result import ResultKind, ToolResult

ERROR_PREFIX = "Error: "


def error_result(message: str, kind: str) -> ToolResult:
    """What the agent hands the model when a tool raises: `Error: <message>`, with its kind."""
    return ToolResult(f"{ERROR_PREFIX}{message}", ResultKind.ERROR, error=kind)


def _kind(result: str) -> ResultKind | None:
    return result.kind if isinstance(result, ToolResult) else None


def _data(result: str) -> dict:
    return result.data if isinstance(result, ToolResult) else {}


def grep_hits(result: str) -> list[tuple[str, int]]:
    """The (path, line) of every match a grep answer lists."""
    return [tuple(hit) for hit in _data(result).get("hits", [])] if _kind(result) else []


def grep_hit_mark(path: str, line: int) -> str:
    """The text a grep answer holds for a match at `path`:`line` (for the executed verdict)."""
    return f"{path}:{line}: "


def grep_file_mark(path: str) -> str:
    """The text a grep answer holds before every match in `path`."""
    return f"{path}:"


def grep_found_nothing(result: str) -> bool:
    """Whether a grep answer says no line matched."""
    return _kind(result) is ResultKind.NO_MATCHES


def is_truncated(result: str) -> bool:
    """Whether a tool answer was cut short (too many matches, too long)."""
    return bool(_data(result).get("truncated"))


COMMAND_NOT_FOUND = 127
"""The shell's exit code for a command it cannot find."""


def command_exit_code(result: str) -> int | None:
    """A command's exit code (None when it was killed or the result is no command's)."""
    if _kind(result) is not ResultKind.COMMAND:
        return None
    code = _data(result).get("exit_code")
    return code if isinstance(code, int) else None


def command_output(result: str) -> str | None:
    """The output of a command that exited 0, or None when it failed."""
    data = _data(result)
    if _kind(result) is not ResultKind.COMMAND or data.get("exit_code") != 0:
        return None
    return str(data.get("output", ""))


def error_kind(result: str) -> str | None:
    """Why a tool refused or failed (an `ErrorKind`), or None for an answer that is no error."""
    return _data(result).get("error") if _kind(result) is ResultKind.ERROR else None
