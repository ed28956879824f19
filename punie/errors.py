"""The one error family: each message names the input and says what to do."""

from __future__ import annotations


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
