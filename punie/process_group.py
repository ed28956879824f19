"""Signalling and stopping a process group: the one place Punie ends processes it started.

Every child Punie starts (MLX servers and workers, tool commands, grep) leads its own process
group, so the group id is the child's pid and one `killpg` reaches whatever it spawned.
"""

from __future__ import annotations

import os
import signal
import subprocess


def signal_group(pgid: int, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Send `sig` to every process in the group; whether any was still there."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only a reused group id of someone else's processes; leave it
        return False
    return True


def stop_group(
    process: subprocess.Popen, grace_s: float, first: signal.Signals = signal.SIGTERM
) -> bool:
    """Stop the group `process` leads: `first`, SIGKILL after `grace_s`, then reap it and kill
    whatever outlived it in the group. Whether it had to be SIGKILLed."""
    signal_group(process.pid, first)
    killed = False
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        killed = signal_group(process.pid)
        process.wait()
    signal_group(process.pid)  # anything it spawned that outlived it is still in its group
    return killed
