"""SIGINT and SIGTERM during a run: the running commands' process groups are killed at once,
the run ends `interrupted` with its trace line written, and the caller exits; a second signal
is quiet."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from punie.runtime.tools import RUNNING, RunningCommands

log = structlog.get_logger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was ended by a signal; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class SignalState:
    """Which signal ended the run, if one did."""

    signum: int | None = None

    @property
    def reason(self) -> str | None:
        if self.signum is None:
            return None
        if self.signum == signal.SIGINT:
            return "interrupted by the user (Ctrl-C)"
        return f"interrupted by {signal.Signals(self.signum).name}"


@contextmanager
def stop_on_signals(
    commands: RunningCommands, cancel: Callable[[], None], on_stop: Callable[[str], None]
) -> Iterator[SignalState]:
    """While inside: SIGINT/SIGTERM kill `commands` (and every tool process), call
    `on_stop(reason)` and `cancel()`; a repeated signal only kills again. Only in the main
    thread of a running asyncio loop; elsewhere it does nothing."""
    state = SignalState()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handle(signum: int) -> None:
        first = state.signum is None
        if first:
            state.signum = signum
        reason = state.reason or "interrupted"
        commands.kill_all(reason)
        RUNNING.kill_all(reason)
        if first:
            log.warning("run_signalled", signal=signal.Signals(signum).name)
            on_stop(reason)
            cancel()

    for signum in _SIGNALS:
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield state
    finally:
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)
        if state.signum is not None:  # exiting: a second Ctrl-C must not print a traceback
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
