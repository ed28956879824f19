"""`punie demo` and `punie loop`: the whole loop, offline, on the embedded model, round by round.

The stages live in `punie.loop.demo` (data, mix, training) and `punie.loop.rounds` (evaluate,
harvest from the training repositories, retrain); this module runs them in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie.loop.demo import DemoConfig, demo_tasks, prepare_data
from punie.loop.rounds import run_rounds
from punie.loop.summary import write_loop_report
from punie.mlx.adapters import remember_adapter
from punie.progress import Console


@dataclass
class DemoResult:
    adapter: Path
    """The last round's adapter (now the default of `punie run`)."""
    report_markdown: Path
    report_chart: Path | None
    report_json: Path
    harvested: list[Path]
    """Per round after the first: the verified conversations that round trained on."""
    summary: dict[str, Any]
    seconds: float
    reused: list[str]


def run_demo(config: DemoConfig, console: Console | None = None) -> DemoResult:
    """Run the whole loop, `config.rounds` times round; see the module docstring."""
    console = console or Console()
    started = time.perf_counter()
    stages, model_dir, data = prepare_data(config, console)
    tasks = demo_tasks(config, data)
    rounds = run_rounds(stages, config, model_dir, data, tasks)
    final = rounds[-1]
    remember_adapter(final.adapter, model_dir)
    seconds = time.perf_counter() - started
    report = write_loop_report(config, rounds, tasks, stages, seconds=seconds)
    return DemoResult(
        adapter=final.adapter,
        report_markdown=report.markdown,
        report_chart=report.chart,
        report_json=report.json,
        harvested=[r.harvested_file for r in rounds if r.harvested_file is not None],
        summary=report.payload,
        seconds=seconds,
        reused=stages.reused,
    )
