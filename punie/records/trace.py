"""A run as a traces file holds it: its status, tool calls, model exchanges and transcript.

One run is one JSON line, appended and flushed as the run ends, whatever ends it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, Field

from punie.errors import DataError
from punie.records.jsonl import append_line, read_records

log = structlog.get_logger(__name__)


class RunStatus(StrEnum):
    """How a run ended; every run ends with exactly one."""

    ANSWERED = "answered"
    BUDGET_EXHAUSTED = "budget_exhausted"
    LOOP_DETECTED = "loop_detected"
    DEGENERATE_OUTPUT = "degenerate_output"
    MODEL_ERROR = "model_error"
    INTERRUPTED = "interrupted"
    TIMED_OUT = "timed_out"
    """The wall-clock safety net ended the run: a fact about the machine, not the model."""


class ToolCallRecord(BaseModel):
    """One tool call the model asked for, as it happened: the trace's one form of a call.

    `arguments` are as the model wrote them (before pydantic-ai coerced `"3"` into 3), so the
    evaluator scores the call the way BFCL does; a call the runtime never ran (a guard stopped
    it, or its arguments were rejected) has `executed` False.
    """

    step: int
    name: str
    arguments: dict[str, Any]
    result: str | None = None
    error: str | None = None
    duration_ms: float = 0.0
    tool_call_id: str | None = None
    executed: bool = True
    """False for a call that a guard stopped before it ran."""
    kind: str | None = None
    """The result's kind (`ResultKind`), or the error's (`ErrorKind`) when it failed."""
    sandbox: str | None = None
    """For run_command: the sandbox the command ran in (bubblewrap, sandbox-exec, none)."""


class ModelExchange(BaseModel):
    """One model request and its response."""

    step: int
    text: str
    tool_call_ids: list[str] = Field(default_factory=list)
    """The calls this response asked for (their records are in `RunOutcome.tool_calls`)."""
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    cut_at_marker: bool = False
    recovered_text_calls: int = 0


class RunOutcome(BaseModel):
    """A finished run: what a traces file holds, one per line."""

    run_id: str
    status: RunStatus
    output: str | None
    reason: str | None = None
    question: str
    repo: str
    model: str
    base_url: str | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    sandbox: str = "none"
    started_at: datetime
    duration_s: float
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    exchanges: list[ModelExchange] = Field(default_factory=list)
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    """The pydantic-ai message history, as `ModelMessagesTypeAdapter` dumps it."""
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def answered(self) -> bool:
        return self.status is RunStatus.ANSWERED

    def calls_of(self, exchange: ModelExchange) -> list[ToolCallRecord]:
        """The tool calls one model response asked for, in its order."""
        by_id = {c.tool_call_id: c for c in self.tool_calls}
        return [by_id[i] for i in exchange.tool_call_ids if i in by_id]


class TraceWriter:
    """Appends one JSON line per run and flushes it to disk at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, outcome: RunOutcome) -> None:
        append_line(self.path, outcome)
        log.info("trace_written", path=str(self.path), status=outcome.status.value)


def read_traces(path: Path) -> Iterator[RunOutcome]:
    """Read a traces file; a damaged line raises DataError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"traces file {path} does not exist")
    yield from read_records(
        path, RunOutcome, what="traces", fix="not a Punie trace line; pass a traces file"
    )
