"""The tracker: every tool call and model exchange of a run, and the traces file it appends to."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, Field, ValidationError

from punie.errors import DataError
from punie.runtime.guards import RunStatus

log = structlog.get_logger(__name__)


class ToolCallRecord(BaseModel):
    """One tool call as it happened."""

    step: int
    name: str
    arguments: dict[str, Any]
    result: str | None = None
    error: str | None = None
    duration_ms: float = 0.0
    tool_call_id: str | None = None
    executed: bool = True
    """False for a call that a guard stopped before it ran."""


class ModelExchange(BaseModel):
    """One model request and its response."""

    step: int
    text: str
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
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


class Tracker:
    """Collects a run's tool calls and model exchanges as they happen."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()
        self.tool_calls: list[ToolCallRecord] = []
        self.exchanges: list[ModelExchange] = []
        self.listeners: list[Callable[[ToolCallRecord], None]] = []

    @property
    def step(self) -> int:
        """The number of model responses so far (tool calls belong to the latest)."""
        return len(self.exchanges)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def record_tool_call(self, record: ToolCallRecord) -> None:
        self.tool_calls.append(record)
        for listener in self.listeners:
            listener(record)
        log.info(
            "tool_call",
            name=record.name,
            step=record.step,
            ok=record.error is None,
            duration_ms=round(record.duration_ms, 1),
        )

    def record_exchange(self, exchange: ModelExchange) -> None:
        self.exchanges.append(exchange)
        log.info(
            "model_response",
            step=exchange.step,
            output_tokens=exchange.output_tokens,
            tool_calls=len(exchange.tool_calls),
            cut=exchange.cut_at_marker,
        )


class TraceWriter:
    """Appends one JSON line per run and flushes it to disk at once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, outcome: RunOutcome) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = outcome.model_dump_json() + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        log.info("trace_written", path=str(self.path), status=outcome.status.value)


def read_traces(path: Path) -> Iterator[RunOutcome]:
    """Read a traces file; a damaged line raises DataError naming the file and line."""
    if not path.is_file():
        raise DataError(f"traces file {path} does not exist")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield RunOutcome.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                first = str(exc).splitlines()[0]
                raise DataError(f"{path}:{number}: not a Punie trace line ({first})") from exc
