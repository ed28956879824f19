"""`punie.mlx.child` with real child processes: JSON in and out, errors, memory, logs, and
children that die with their parent however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from punie.errors import DataError
from punie.mlx.child import MB, ChildError, MemoryPolicy, call, start

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


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


def test_call_returns_the_json_result_from_another_process() -> None:
    result = call("echo", "child_targets:echo", {"a": 1, "b": ["x"]}, extra_env=ENV)
    assert result["values"] == {"a": 1, "b": ["x"]}
    assert result["pid"] != os.getpid()


def test_a_punie_error_in_the_child_is_raised_as_the_same_kind() -> None:
    with pytest.raises(DataError, match=r"^row 3 is broken$"):
        call("refuse", "child_targets:refuse", {"message": "row 3 is broken"}, extra_env=ENV)


def test_a_child_that_dies_unreported_is_named_with_its_log_kept() -> None:
    with pytest.raises(ChildError) as caught:
        call("dier", "child_targets:die", {}, extra_env=ENV)
    message = str(caught.value)
    assert "the dier (pid " in message
    assert "exited with status 3" in message
    assert "peak RSS" in message
    log_path = Path(message.split("log: ")[1].split(".log")[0] + ".log")
    assert log_path.is_file()  # kept on failure
    log_path.unlink()
    log_path.parent.rmdir()


@linux_only
def test_peak_rss_is_recorded_and_the_log_removed_after_success() -> None:
    child = start("holder", ["main", "child_targets:main_hold"], extra_env=ENV)
    assert child.wait(timeout=60) == 0
    assert child.peak_rss_bytes > 300 * MB
    assert child.failure() is None
    assert child.log_path is not None and child.log_path.is_file()
    child.close()
    assert not child.workdir.exists()


@linux_only
def test_a_child_past_its_memory_bound_is_killed_and_says_so() -> None:
    bound = MemoryPolicy(cache_limit_bytes=None, max_rss_bytes=150 * MB)
    child = start("greedy", ["main", "child_targets:main_hold"], memory=bound, extra_env=ENV)
    child.wait(timeout=60)
    line = child.failure()
    assert child.over_memory
    assert line is not None
    assert "exceeded its memory bound of 157 MB" in line
    assert f"log: {child.log_path}" in line
    child.close()
    assert child.workdir.exists()  # kept: it failed
    child.close(keep_log=False)
    assert not child.workdir.exists()


PARENT = textwrap.dedent(
    """
    import os, sys, threading, time
    sys.path.insert(0, {here!r})
    from punie.mlx.child import start
    env = {{"PYTHONPATH": {here!r}}}
    if sys.argv[1] == "thread":
        # Started from a thread that then ends: the child must live on with the process.
        box = []
        t = threading.Thread(target=lambda: box.append(start("c", ["main",
            "child_targets:main_forever"], extra_env=env)))
        t.start(); t.join()
        child = box[0]
    else:
        child = start("c", ["main", "child_targets:main_forever"], extra_env=env)
    print("CHILD", child.pid, flush=True)
    if sys.argv[1] == "crash":
        os.abort()
    time.sleep(600)
    """
)


def _parent(mode: str, tmp: Path) -> tuple[subprocess.Popen[str], int]:
    # The child's folder goes under `tmp`: a parent that dies cannot remove it.
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(here=str(HERE)), mode],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    assert parent.stdout is not None
    try:
        line = next(line for line in parent.stdout if line.startswith("CHILD "))
    except BaseException:
        parent.kill()
        parent.wait()
        raise
    return parent, int(line.split()[1])


@linux_only
def _reap(parent: subprocess.Popen[str], child: int) -> None:
    """Stop the test's parent process and its MLX child, whatever the test left running."""
    if parent.poll() is None:
        parent.kill()
        parent.wait()
    if _alive(child):
        os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "crash"])
def test_the_child_dies_with_its_parent(how: str, tmp_path: Path) -> None:
    parent, child = _parent("crash" if how == "crash" else "plain", tmp_path)
    try:
        assert _poll(lambda: _alive(child), 10)
        if how != "crash":
            os.kill(parent.pid, getattr(signal, how))
        parent.wait(timeout=30)
        assert _poll(lambda: not _alive(child), 10), f"the child outlived its parent ({how})"
    finally:
        _reap(parent, child)


@linux_only
def test_a_child_started_from_a_finished_thread_lives_until_the_parent_dies(
    tmp_path: Path,
) -> None:
    parent, child = _parent("thread", tmp_path)
    try:
        time.sleep(2.0)  # longer than the watchdog's period
        assert _alive(child), "the child died with the thread that started it"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert _poll(lambda: not _alive(child), 10), "the child outlived its parent"
    finally:
        _reap(parent, child)


def test_a_training_child_keeps_freed_memory_and_the_users_tunables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keep = MemoryPolicy(cache_limit_bytes=None, keep_freed_memory=True)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    seen = call("echo", "child_targets:environment", {"name": "GLIBC_TUNABLES"}, memory=keep,
                extra_env=ENV)  # fmt: skip
    assert seen["value"].startswith("glibc.malloc.mmap_threshold=")
    assert seen["value"].endswith(":glibc.malloc.arena_max=2")
    monkeypatch.delenv("GLIBC_TUNABLES")
    plain = call("echo", "child_targets:environment", {"name": "GLIBC_TUNABLES"}, extra_env=ENV)
    assert plain["value"] is None


def test_blas_threads_cap_the_childs_blas_and_keep_the_users_own_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from punie.mlx.blas import THREAD_VARS

    for name in THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    target = "child_targets:environment"
    capped = call("echo", target, {"name": "OPENBLAS_NUM_THREADS"}, extra_env=ENV, blas_threads=1)
    assert capped["value"] == "1"
    assert call("echo", target, {"name": "OPENBLAS_NUM_THREADS"}, extra_env=ENV)["value"] is None
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    mine = call("echo", target, {"name": "OPENBLAS_NUM_THREADS"}, extra_env=ENV, blas_threads=1)
    assert mine["value"] == "3"
    omp = call("echo", target, {"name": "OMP_NUM_THREADS"}, extra_env=ENV, blas_threads=1)
    assert omp["value"] == "1"
