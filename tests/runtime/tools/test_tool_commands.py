"""run_command: real bash subprocesses in the workspace, timeouts that kill the whole group,
capped output."""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from sandbox_helpers import UNSANDBOXED

from punie.errors import ToolError
from punie.runtime.tools import Workspace, run_command


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.joinpath("self").exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in {"Z", "X"}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_runs_in_root_and_reports_exit_code_and_both_streams(repo: Path) -> None:
    result = run_command(Workspace(repo), "pwd; ls pkg; echo oops >&2; exit 3")
    lines = result.splitlines()
    assert lines[0] == "exit code: 3"
    assert lines[1] == str(repo.resolve())
    assert "shapes.py" in lines
    assert "oops" in lines


def test_timeout_kills_the_command_and_the_child_it_spawned(repo: Path) -> None:
    started = time.monotonic()
    result = run_command(
        Workspace(repo),
        "sleep 300 & echo $! > child.pid; echo started; sleep 300",
        timeout_s=1.5,
        sandbox=UNSANDBOXED,  # host pids: the sandbox's own PID namespace is tested elsewhere
    )
    elapsed = time.monotonic() - started
    assert elapsed < 10
    assert result.startswith("exit code: none (timed out after 1.5 s;")
    assert "killed" in result.splitlines()[0]
    assert "started" in result  # output written before the timeout is kept
    child = int((repo / "child.pid").read_text())
    deadline = time.monotonic() + 5  # SIGKILL is asynchronous: poll, briefly
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), f"child {child} survived the timeout"


def test_background_children_do_not_outlive_the_command(repo: Path) -> None:
    result = run_command(
        Workspace(repo),
        "sleep 300 >/dev/null 2>&1 & echo $! > bg.pid; echo done",
        sandbox=UNSANDBOXED,
    )
    assert result.startswith("exit code: 0")
    assert "background processes" in result.splitlines()[0]
    child = int((repo / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_ten_megabyte_output_is_capped_without_holding_it(repo: Path) -> None:
    command = f"{sys.executable} -c \"import sys; sys.stdout.write('y' * 10_000_000 + '\\nEND')\""
    tracemalloc.start()
    try:
        result = run_command(Workspace(repo), command, output_limit=16_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.startswith("exit code: 0\n")
    assert "characters truncated ...]" in result
    assert result.endswith("END")
    assert len(result) < 16_200
    assert peak < 2_000_000, f"peak Python memory {peak:,} bytes for a 10 MB output"


def test_non_utf8_output_does_not_break(repo: Path) -> None:
    result = run_command(Workspace(repo), "printf 'a\\377b\\n'")
    assert result == "exit code: 0\na\ufffdb\n"


def test_bad_arguments_are_tool_errors(repo: Path) -> None:
    with pytest.raises(ToolError, match="empty command"):
        run_command(Workspace(repo), "  ")
    with pytest.raises(ToolError, match="timeout_s must be positive"):
        run_command(Workspace(repo), "ls", timeout_s=0)
    with pytest.raises(ToolError, match="NUL byte"):
        run_command(Workspace(repo), "echo a\x00b")
    with pytest.raises(ToolError, match="100,000"):
        run_command(Workspace(repo), "x" * 1_000_000)
