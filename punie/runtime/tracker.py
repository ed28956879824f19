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
