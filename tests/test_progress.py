"""Progress lines appear in a log (stdout redirected to a file), at the interval, with counts."""

from __future__ import annotations

import io
import time

from rich.console import Console

from punie.progress import progress


def test_plain_lines_reach_a_file_even_between_steps() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with progress("eval tuned", 4, unit="tasks", console=console, interval_s=0.2) as tracker:
        tracker.advance()
        time.sleep(0.7)  # no step finishes here; the log still gets lines
        tracker.advance(note="loss 1.23")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[eval tuned] 0/4 tasks")
    ticks = [line for line in lines if line.startswith("[eval tuned] 1/4 tasks")]
    assert len(ticks) >= 2, lines
    assert "/min" in ticks[0] and "ETA" in ticks[0]
    assert lines[-1].startswith("[eval tuned] done: 2 tasks in ")


def test_a_terminal_gets_a_bar_not_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with progress("train", 3, console=console, interval_s=0.05) as tracker:
        for _ in range(3):
            tracker.advance()
        time.sleep(0.2)
    assert "[train]" not in out.getvalue()
    assert "3/3" in out.getvalue()
