"""End to end: `punie eval` on fixture tasks against the real embedded model, served by mlx-lm.

SmolLM2-135M mostly fails the answers; this asserts the pipeline: statuses, files, traces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from punie.evaluation.suite import EVAL_DIR, load_suite
from punie.records.task import write_tasks
from punie.records.trace import RunStatus, read_traces

TASK_IDS = ["bookshelf-where-loanservice", "general-arithmetic", "bookshelf-recover-fee-module"]


@pytest.mark.slow
def test_punie_eval_on_the_embedded_model_writes_the_report(tmp_path: Path) -> None:
    suite = {t.id: t for t in load_suite([EVAL_DIR / "bookshelf.jsonl"])}
    tasks_file = tmp_path / "tasks.jsonl"
    write_tasks(tasks_file, [suite[i] for i in TASK_IDS])
    out = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable, "-m", "punie", "eval", "--tasks", str(tasks_file),
            "--concurrency", "2", "--max-tokens", "96", "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in rows] == TASK_IDS
    assert {r["label"] for r in rows} == {"base"}
    statuses = {r["status"] for r in rows}
    assert statuses <= {s.value for s in RunStatus} - {RunStatus.INTERRUPTED.value}
    assert statuses != {RunStatus.MODEL_ERROR.value}, "the server answered none of the runs"
    traces = list(read_traces(out / "base" / "traces.jsonl"))
    assert sorted(t.run_id for t in traces) == sorted(r["run_id"] for r in rows)
    assert all(t.exchanges for t in traces)
    markdown = (out / "report.md").read_text()
    assert "| metric | base |" in markdown and "| overall | base | 3 |" in markdown
    assert (out / "report.png").stat().st_size > 1000
    report = json.loads((out / "report.json").read_text())
    assert report["targets"][0]["tokenizer"].startswith("tokenizer of smollm2")
    assert report["metrics"]["base"]["overall"]["runs"] == 3
