"""A server that dies mid-eval fails the stage with one clear line and keeps the traces so far."""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from punie.errors import ServerError
from punie.evaluation.evaluate import EvalTarget, evaluate
from punie.evaluation.suite import EVAL_DIR, load_suite
from punie.records.trace import RunStatus, read_traces


def _server_children() -> list[int]:
    """This process's children that run Punie's mlx-lm server."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"punie.mlx.serve:main" in cmdline:
                found.append(int(pid))
    return found


def _kill_server_after_first_trace(traces: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if traces.is_file() and traces.read_text().strip() and _server_children():
            pid = _server_children()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def _evaluate_until_a_server_is_killed(
    tasks: list, targets: list[EvalTarget], out_dir: Path, *, together: bool = False
) -> tuple[str, int]:
    """Evaluate while a thread SIGKILLs the first server once `base` has a trace line; the
    ServerError's message (one line) and the killed pid."""
    killed: list[int] = []
    traces = out_dir / "base" / "traces.jsonl"
    killer = threading.Thread(target=_kill_server_after_first_trace, args=(traces, killed))
    killer.start()
    try:
        with pytest.raises(ServerError) as caught:
            evaluate(tasks, targets, out_dir=out_dir, concurrency=1, max_tokens=48,
                     show_progress=False, together=together)  # fmt: skip
    finally:
        killer.join()
    assert killed, "the server was never killed"
    message = str(caught.value)
    assert "\n" not in message
    return message, killed[0]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc")
def test_a_server_killed_mid_eval_fails_the_stage_and_keeps_earlier_traces(
    tmp_path: Path,
) -> None:
    tasks = load_suite([EVAL_DIR / "bookshelf.jsonl"])[:5]
    traces = tmp_path / "base" / "traces.jsonl"
    message, pid = _evaluate_until_a_server_is_killed(tasks, [EvalTarget("base")], tmp_path)
    assert message.startswith(
        f"evaluating 'base' failed: the mlx-lm server (pid {pid}) was killed by SIGKILL"
    )
    assert "peak RSS " in message and " MB" in message
    log_path = Path(message.split("log: ")[1].split(".log")[0] + ".log")
    assert log_path.is_file()
    # Every run is traced as it ended; those before the death finished, the spoiled ones
    # (at most the one in flight, at concurrency 1) say the server failed. None is scored.
    traced = list(read_traces(traces))
    kept = [t for t in traced if t.status is not RunStatus.MODEL_ERROR]
    finished = re.search(rf"(\d+) of {len(tasks)} runs finished before and were kept in ", message)
    assert finished is not None and message.endswith(str(traces)), message
    # Runs scored as finished are traced; the one in flight when the server died is traced
    # too (how it ended), but not counted as finished and never scored.
    assert 1 <= int(finished.group(1)) <= len(kept) < len(tasks)
    assert len(traced) - int(finished.group(1)) <= 1
    assert not (tmp_path / "results.jsonl").exists()  # no report scored the dead server's runs
    shutil.rmtree(log_path.parent)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc")
def test_a_server_killed_while_two_targets_run_together_fails_them_both(tmp_path: Path) -> None:
    tasks = load_suite([EVAL_DIR / "bookshelf.jsonl"])[:4]
    targets = [EvalTarget("base"), EvalTarget("again")]
    message, pid = _evaluate_until_a_server_is_killed(tasks, targets, tmp_path, together=True)
    assert re.match(
        rf"evaluating '(base|again)' failed: the mlx-lm server \(pid {pid}\) was killed "
        "by SIGKILL",
        message,
    ), message
    assert not (tmp_path / "results.jsonl").exists()
    assert _server_children() == []  # the other target's server was stopped too
    shutil.rmtree(Path(message.split("log: ")[1].split(".log")[0] + ".log").parent)


def _blas_caps(pid: int) -> dict[str, str]:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
    return {k: v for k, v in pairs.items() if k.endswith("_NUM_THREADS")}


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux /proc")
def test_servers_evaluated_together_share_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from punie.mlx.blas import THREAD_VARS
    from punie.mlx.machine import cores_each

    for name in THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    tasks = load_suite([EVAL_DIR / "bookshelf.jsonl"])[:1]
    seen: list[dict[str, str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not seen:
            pids = _server_children()
            if len(pids) == 2:
                seen.extend(_blas_caps(pid) for pid in pids)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        targets = [EvalTarget("base"), EvalTarget("again")]
        report = evaluate(tasks, targets, out_dir=tmp_path, concurrency=1, max_tokens=16,
                          show_progress=False, together=True)  # fmt: skip
    finally:
        done.set()
        watcher.join()
    each = str(cores_each(2))
    assert seen == [dict.fromkeys(THREAD_VARS, each)] * 2
    assert set(report.metrics) == {"base", "again"}
