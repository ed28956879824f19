"""Process groups the tools started and are waiting on, so a signal or a spent budget can kill
them at once (`RunningCommands.kill_all`) instead of waiting for them to end."""

from __future__ import annotations

import threading

import structlog

from punie.process_group import signal_group

log = structlog.get_logger(__name__)


class RunningCommands:
    """The process groups of tool subprocesses running now (each led by its own pid)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._killed: dict[int, str] = {}

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)

    def discard(self, pgid: int) -> str | None:
        """Forget a finished group; why it was killed from outside, if it was."""
        with self._lock:
            self._groups.discard(pgid)
            return self._killed.pop(pgid, None)

    def kill_all(self, reason: str) -> int:
        """Kill every running group now; how many there were."""
        with self._lock:
            groups = list(self._groups)
            for pgid in groups:
                self._killed[pgid] = reason
        for pgid in groups:
            signal_group(pgid)
        if groups:
            log.warning("commands_killed", groups=len(groups), reason=reason)
        return len(groups)

    def __len__(self) -> int:
        with self._lock:
            return len(self._groups)


RUNNING = RunningCommands()
"""Every tool subprocess of this process, whichever run started it."""
