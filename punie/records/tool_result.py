"""What a code tool answers: the text the model sees, with its kind and data beside it.

`ToolResult` is a `str` (the rendered text goes to the model, the traces and every test as it
is), carrying `kind` and `data`, so the task generator and the harvester read what a result
*means* without matching its English wording. A failure is a `ToolError` with a `kind` too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ResultKind(StrEnum):
    """What kind of answer a tool gave."""

    MATCHES = "matches"
    """grep found lines; data: `hits` [(path, line)], `truncated`."""
    NO_MATCHES = "no_matches"
    FILE_TEXT = "file_text"
    """read_file; data: `path`, `truncated`."""
    EMPTY_FILE = "empty_file"
    COMMAND = "command"
    """run_command; data: `exit_code` (None when killed), `output`, `truncated`."""
    WRITTEN = "written"
    ERROR = "error"
    """The tool refused or failed; data: `error` (an ErrorKind)."""


class ErrorKind(StrEnum):
    """Why a tool refused or failed, where a caller acts on the reason."""

    FAILED = "failed"
    NOT_FOUND = "not_found"
    IS_DIRECTORY = "is_directory"
    BAD_PATTERN = "bad_pattern"
    REFUSED = "refused"


class ToolResult(str):
    """A tool's answer as text, with `kind` and `data` (see `ResultKind`)."""

    kind: ResultKind
    data: dict[str, Any]

    def __new__(cls, text: str, kind: ResultKind, **data: Any) -> ToolResult:
        result = super().__new__(cls, text)
        result.kind = kind
        result.data = data
        return result

    @property
    def truncated(self) -> bool:
        return bool(self.data.get("truncated"))
