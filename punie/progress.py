"""Progress for long work: a rich bar on a terminal, a plain line at least every 30 s in a log.

With stdout not a terminal (CI, `nohup`, `tee`), rich bars never show; `progress()` then prints
`[label] 12/38 tasks · 1.9/min · ETA 13.7 min` from a background thread, whether or not a step
finished, and one closing line with the elapsed time.

This module and `punie.cli` are the only places that import rich: the training and import
children draw their own progress without going through the CLI, and the loop prints its stages
on the `Console` passed down from the CLI (or `Console()` when called as a library).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LOG_INTERVAL_S = 30.0

__all__ = ["LOG_INTERVAL_S", "Console", "ProgressTracker", "progress", "stderr_console"]


def stderr_console() -> Console:
    """A console on stderr, for processes whose stdout carries results (a child's JSON, a path)."""
    return Console(stderr=True)


@dataclass
class ProgressTracker:
    """Counts finished units of one piece of work; `note` holds a short status (a loss...)."""

    label: str
    total: int | None
    unit: str
    done: int = 0
    note: str = ""
    started: float = field(default_factory=time.monotonic)
    _bar: tuple[Progress, int] | None = None

    def advance(self, amount: int = 1, *, note: str | None = None) -> None:
        self.done += amount
        if note is not None:
            self.note = note
        if self._bar is not None:
            bar, task = self._bar
            bar.update(task, advance=amount, description=self._description())

    def update(self, *, done: int | None = None, note: str | None = None) -> None:
        """Set the count (work resumed part-way, steps counted elsewhere) or the note."""
        if done is not None:
            self.advance(done - self.done, note=note)
        elif note is not None:
            self.advance(0, note=note)

    def _description(self) -> str:
        return f"{self.label} {self.note}".strip()

    def line(self) -> str:
        """The plain progress line: count, rate, ETA, note."""
        elapsed = time.monotonic() - self.started
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        parts = [f"[{self.label}] {count} {self.unit}"]
        if self.done and elapsed > 0:
            per_minute = self.done / elapsed * 60
            parts.append(f"{per_minute:.1f}/min")
            if self.total is not None and self.total > self.done:
                parts.append(f"ETA {(self.total - self.done) / per_minute:.1f} min")
        parts.append(f"{elapsed / 60:.1f} min elapsed")
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


@contextmanager
def progress(
    label: str,
    total: int | None,
    *,
    unit: str = "steps",
    console: Console | None = None,
    interval_s: float = LOG_INTERVAL_S,
    enabled: bool = True,
) -> Iterator[ProgressTracker]:
    """Track `total` units of work named `label`; see the module docstring."""
    console = console or Console()
    tracker = ProgressTracker(label, total, unit)
    if not enabled:
        yield tracker
        return
    if console.is_terminal:
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn()]  # fmt: skip
        with Progress(*columns, console=console, transient=False) as bar:
            tracker._bar = (bar, bar.add_task(label, total=total))
            yield tracker
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(interval_s):
            console.print(tracker.line(), markup=False, highlight=False)

    console.print(tracker.line(), markup=False, highlight=False)
    ticker = threading.Thread(target=tick, name=f"progress-{label}", daemon=True)
    ticker.start()
    try:
        yield tracker
    finally:
        stop.set()
        ticker.join()
        elapsed = time.monotonic() - tracker.started
        console.print(
            f"[{label}] done: {tracker.done} {unit} in {elapsed / 60:.1f} min",
            markup=False,
            highlight=False,
        )
