"""The tracker: every tool call and model exchange of a run, and the traces file it appends to."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from punie.records.trace import ModelExchange, ToolCallRecord

log = structlog.get_logger(__name__)


class Tracker:
    """Collects a run's tool calls and model exchanges as they happen."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()
        self.tool_calls: list[ToolCallRecord] = []
        self.exchanges: list[ModelExchange] = []
        self.listeners: list[Callable[[ToolCallRecord], None]] = []
        self._asked: dict[str, ToolCallRecord] = {}

    @property
    def step(self) -> int:
        """The number of model responses so far (tool calls belong to the latest)."""
        return len(self.exchanges)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def ask_for_call(self, record: ToolCallRecord) -> None:
        """A call the model's response asked for, recorded before it runs (or is refused)."""
        record.executed = False
        self.tool_calls.append(record)
        if record.tool_call_id is not None:
            self._asked[record.tool_call_id] = record

    def asked_call(self, tool_call_id: str | None) -> ToolCallRecord | None:
        """The record of a call the model asked for, taken as the tool starts running it."""
        return self._asked.pop(tool_call_id, None) if tool_call_id is not None else None

    def record_tool_call(self, record: ToolCallRecord) -> None:
        """A call that finished (or was stopped): listeners and the log hear of it."""
        if not any(r is record for r in self.tool_calls):
            self.tool_calls.append(record)
        if record.tool_call_id is not None:
            self._asked.pop(record.tool_call_id, None)
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
            tool_calls=len(exchange.tool_call_ids),
            cut=exchange.cut_at_marker,
        )
