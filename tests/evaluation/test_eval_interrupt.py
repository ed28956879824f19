"""Ctrl-C during an evaluation keeps the trace line of every finished and every in-flight run:
the evaluator runs through the same session as `punie run`, which writes each line as the run
ends, whatever ends it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from child_signals import default_sigint
from scripted_server import ScriptedServer, text_reply, tool_reply

from punie.evaluation.suite import EVAL_DIR

SCRIPT = """
import sys
from pathlib import Path
from punie.evaluation.evaluate import EvalTarget, evaluate
from punie.evaluation.suite import load_suite
tasks = load_suite([Path(sys.argv[1])])[:8]
evaluate(tasks, [EvalTarget("scripted", model="qwen2.5-coder", base_url=sys.argv[2])],
         out_dir=Path(sys.argv[3]), concurrency=2, show_progress=False)
"""


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    # A first turn calls grep, a turn after a tool result answers: two requests per task.
    if body["messages"][-1]["role"] == "tool":
        return text_reply("It is in bookshelf/catalog.py.")
    return tool_reply("grep", {"pattern": "class"})


def _question(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def test_ctrl_c_keeps_finished_and_in_flight_trace_lines(tmp_path: Path) -> None:
    traces = tmp_path / "scripted" / "traces.jsonl"
    with ScriptedServer([_reply], delay_s=0.6) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(EVAL_DIR / "bookshelf.jsonl"), server.base_url,
             str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=default_sigint,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not (traces.is_file() and traces.read_text().count("\n") >= 2):
                assert child.poll() is None, child.communicate()[0]
                assert time.monotonic() < deadline, "no run finished in time"
                time.sleep(0.05)
            # A request of a third run is in flight now (its reply takes 0.6 s).
            while len({_question(b) for b in list(server.bodies)}) < 3:
                assert child.poll() is None, child.communicate()[0]
                assert time.monotonic() < deadline, "no third run reached the server"
                time.sleep(0.02)
            child.send_signal(signal.SIGINT)
            output, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        started = {_question(b) for b in server.bodies}
    assert child.returncode != 0, output
    lines = [json.loads(line) for line in traces.read_text().splitlines() if line.strip()]
    by_status: dict[str, int] = {}
    for line in lines:
        by_status[line["status"]] = by_status.get(line["status"], 0) + 1
    assert by_status.get("answered", 0) >= 2, by_status
    assert by_status.get("interrupted", 0) >= 1, by_status
    # Every run that reached the server has its line (a run interrupted before its first
    # request has one too), and each line names the task's own repository (not the throwaway
    # copy the run worked in).
    assert started <= {line["question"] for line in lines}
    assert all("punie-eval-" not in line["repo"] for line in lines)
