"""Termination guards: run budgets, repeated-call loops, degenerate output, and the run statuses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic_ai import UsageLimits


class RunStatus(StrEnum):
    """How a run ended; every run ends with exactly one."""

    ANSWERED = "answered"
    BUDGET_EXHAUSTED = "budget_exhausted"
    LOOP_DETECTED = "loop_detected"
    DEGENERATE_OUTPUT = "degenerate_output"
    MODEL_ERROR = "model_error"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Budgets:
    """Hard limits on one run; whichever is reached first ends it."""

    max_requests: int = 12
    max_tool_calls: int = 16
    max_output_tokens: int = 4096
    max_seconds: float = 300.0
    repeat_limit: int = 3
    """The same tool call with the same arguments this many times in a row is a loop."""

    def usage_limits(self) -> UsageLimits:
        """The pydantic-ai limits that enforce the request, tool-call and token budgets."""
        return UsageLimits(
            request_limit=self.max_requests,
            tool_calls_limit=self.max_tool_calls,
            output_tokens_limit=self.max_output_tokens,
        )


class GuardTripped(Exception):
    """Raised inside a run when a guard ends it; carries the status to report."""

    def __init__(self, status: RunStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class LoopDetector:
    """Counts identical consecutive tool calls (same name, same arguments)."""

    repeat_limit: int
    _last: str | None = None
    _count: int = 0
    history: list[str] = field(default_factory=list)

    def observe(self, name: str, arguments: dict[str, Any] | str | None) -> None:
        """Record one requested call; raise GuardTripped when it repeats too often in a row."""
        key = f"{name}:{_canonical(arguments)}"
        self.history.append(key)
        self._count = self._count + 1 if key == self._last else 1
        self._last = key
        if self._count >= self.repeat_limit:
            raise GuardTripped(
                RunStatus.LOOP_DETECTED,
                f"tool call {name} repeated {self._count} times in a row with the same arguments",
            )


def _canonical(arguments: dict[str, Any] | str | None) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return arguments.strip()
    return json.dumps(arguments or {}, sort_keys=True)


_MIN_DEGENERATE_CHARS = 48


def find_degenerate_repeat(
    text: str, *, max_unit: int = 24, min_repeats: int = 8, min_share: float = 0.5
) -> str | None:
    """Return a short unit that repeats back to back and fills much of the text, else None.

    Catches `!<|im_end|>!<|im_end|>...`, `the the the ...` and `\\n\\n\\n...` tails: a unit of
    at most `max_unit` characters repeated at least `min_repeats` times in a row, covering at
    least `min_share` of the text or at least 200 characters of it.
    """
    if len(text) < _MIN_DEGENERATE_CHARS:
        return None
    best: tuple[int, str] | None = None
    for size in range(1, max_unit + 1):
        pattern = re.compile(rf"(.{{{size}}})\1{{{min_repeats - 1},}}", re.DOTALL)
        for match in pattern.finditer(text):
            unit = match.group(1)
            if len(set(unit)) == 1 and size > 1:
                continue  # already found as the one-character unit
            covered = match.end() - match.start()
            if best is None or covered > best[0]:
                best = (covered, unit)
    if best is None:
        return None
    covered, unit = best
    if covered >= 200 or covered >= min_share * len(text):
        return unit
    return None
