"""Termination guards: run budgets, repeated-call loops, degenerate output, and the run statuses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic_ai import UsageLimits

from punie.records.trace import RunStatus
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT


@dataclass(frozen=True)
class Budgets:
    """Hard limits on one run; whichever is reached first ends it."""

    max_requests: int = 12
    max_tool_calls: int = 16
    max_output_tokens: int = 4096
    max_seconds: float = 300.0
    repeat_limit: int = 3
    """The same tool call with the same arguments this many times in a row is a loop."""
    max_tool_output_chars: int = DEFAULT_OUTPUT_LIMIT
    """What one tool result may put into the context (head and tail kept). Every later request
    carries it again, so on a CPU it decides how long each turn's prompt processing takes."""

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

    def observe(self, name: str, arguments: dict[str, Any] | str | None) -> None:
        """Record one requested call; raise GuardTripped when it repeats too often in a row."""
        key = f"{name}:{_canonical(arguments)}"
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
    text: str,
    *,
    short_unit: int = 24,
    long_unit: int = 400,
    min_short_repeats: int = 8,
    min_long_repeats: int = 3,
    min_share: float = 0.5,
) -> str | None:
    """Return a unit that repeats back to back and fills much of the text, else None.

    Catches `!<|im_end|>!<|im_end|>...` and `the the the ...` (a unit of up to `short_unit`
    characters, at least `min_short_repeats` times in a row) and a sentence or paragraph said
    over and over (up to `long_unit` characters, at least `min_long_repeats` times), when the
    repetition covers at least `min_share` of the text or 200 characters of it.
    """
    n = len(text)
    if n < _MIN_DEGENERATE_CHARS:
        return None
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    need = min(200, min_share * n)
    best: tuple[int, int, int] | None = None  # (covered, start, period)
    for period in range(1, min(long_unit, n // 2) + 1):
        same = codes[:-period] == codes[period:]
        start, run = _longest_true_run(same)
        covered = run + period
        repeats = covered / period
        enough = min_short_repeats if period <= short_unit else min_long_repeats
        if repeats >= enough and covered >= need and (best is None or covered > best[0]):
            best = (covered, start, period)
    if best is None:
        return None
    _, start, period = best
    return text[start : start + period]


def _longest_true_run(flags: np.ndarray) -> tuple[int, int]:
    """Start and length of the longest run of True in a boolean array."""
    if not flags.any():
        return 0, 0
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - starts[longest])
