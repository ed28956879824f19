"""The one error family: each message names the input and says what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class PunieError(Exception):
    """A user-facing error; the CLI prints it as one red line, never a traceback."""


class ConfigError(PunieError):
    """A configuration value (file, flag, profile) is missing or wrong."""


class ToolError(PunieError):
    """A code tool refused or failed; the message goes back to the model as the tool result.

    `kind` says why, for code that acts on it (values of `punie.records.tool_result.ErrorKind`).
    """

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


class ServerError(PunieError):
    """A model server could not be started, reached, or understood."""


class DataError(PunieError):
    """A data file or row could not be read or converted."""


class ModelImportError(PunieError):
    """A model file (GGUF, model folder, adapter) cannot be imported or loaded."""


def first_problem(exc: ValidationError, default_where: str = "?") -> tuple[str, str, Any]:
    """A pydantic ValidationError's first problem: where (dotted path), the message, the input."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or default_where
    return where, str(first["msg"]), first.get("input")
