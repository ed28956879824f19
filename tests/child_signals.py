"""Signals for the child processes tests start and interrupt."""

from __future__ import annotations


def default_sigint() -> None:
    """`preexec_fn` for a child a test interrupts: SIGINT back to its default, so Python installs
    its KeyboardInterrupt handler even when the test run itself was started with SIGINT ignored
    (as a shell does for a background job)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
