"""The training child dies with its parent: a SIGTERM to the parent leaves no orphan behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PARENT = textwrap.dedent(
    """
    import os, sys
    from punie.mlx.train.launch import run_child
    # The child stands in for the training worker: it runs until something stops it.
    sys.exit(run_child([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"],
                       dict(os.environ)))
    """
)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    text = path.read_text() if path.exists() else ""
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _poll(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_child_dies_when_the_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], start_new_session=True)
    child = None
    try:
        assert _poll(lambda: bool(_children(parent.pid)), 30), "the parent started no child"
        child = _children(parent.pid)[0]
        assert _alive(child)
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=10)
        assert _poll(lambda: not _alive(child), 10), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
