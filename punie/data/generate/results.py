"""How the generator reads the code tools' answers: the one place that knows their wording.

The tools answer in text (`path:line: text` grep lines, `exit code: N` before command output,
English error messages). Every check the generator makes on a tool's answer goes through these
functions, so when the tools return typed results only this module changes.
"""

from __future__ import annotations

import re

_GREP_LINE = re.compile(r"^(?P<path>[^\n:]+):(?P<line>\d+): ", re.MULTILINE)
_TRUNCATION_MARKS = ("[stopped at", "characters truncated ...]", "[... truncated:")
_EXIT_OK = "exit code: 0\n"
ERROR_PREFIX = "Error: "


def error_result(message: str) -> str:
    """What the agent hands the model when a tool raises: `Error: <message>`."""
    return f"{ERROR_PREFIX}{message}"


def grep_hits(result: str) -> list[tuple[str, int]]:
    """The (path, line) of every match a grep answer lists."""
    return [(m["path"], int(m["line"])) for m in _GREP_LINE.finditer(result)]


def grep_hit_mark(path: str, line: int) -> str:
    """The text a grep answer holds for a match at `path`:`line` (for the executed verdict)."""
    return f"{path}:{line}: "


def grep_file_mark(path: str) -> str:
    """The text a grep answer holds before every match in `path`."""
    return f"{path}:"


def grep_found_nothing(result: str) -> bool:
    """Whether a grep answer says no line matched."""
    return result.startswith("no matches")


def is_truncated(result: str) -> bool:
    """Whether a tool answer was cut short (too many matches, too long)."""
    return any(mark in result for mark in _TRUNCATION_MARKS)


def command_output(result: str) -> str | None:
    """The output of a command that exited 0, or None when it failed."""
    return result.removeprefix(_EXIT_OK) if result.startswith(_EXIT_OK) else None


def is_bad_regex_error(result: str) -> bool:
    """Whether grep refused the pattern as an invalid regular expression."""
    return result.startswith(ERROR_PREFIX) and "not a valid regular expression" in result


def is_directory_error(result: str) -> bool:
    """Whether read_file refused a folder."""
    return result.startswith(ERROR_PREFIX) and "is a directory" in result


def is_missing_file_error(result: str) -> bool:
    """Whether read_file said the file does not exist."""
    return result.startswith(ERROR_PREFIX) and "does not exist" in result
