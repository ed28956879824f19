"""The loop's report at the top of its work folder: `report.json`, `report.md`, `report.png`.

Base and every round side by side on the same held-out tasks. `report.json` holds, per label
(`base`, `tuned` = the last round, `round-1` ... `round-N`) and per category (and `overall`),
every rate with its Wilson 95% interval and the number of tasks it is over, the means, and at
the top `minutes` (this run's wall time), `held_out_repositories`, and per round what it
trained on and what it harvested for the next.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from punie.evaluation.report import EvalReport, markdown_table, write_chart
from punie.loop.demo import DemoConfig, split_plan
from punie.loop.rounds import RoundResult
from punie.loop.stages import Stages
from punie.records.jsonl import write_text
from punie.records.task import TaskSpec


@dataclass
class LoopReport:
    markdown: Path
    chart: Path
    json: Path
    payload: dict[str, Any]


def side_by_side(rounds: Sequence[RoundResult]) -> EvalReport:
    """One report with base and each round's adapter as labels (`tuned` when one round)."""
    first = EvalReport.model_validate(rounds[0].eval)
    targets = [t for t in first.targets if t.label == "base"]
    metrics = {"base": first.metrics["base"]}
    for result in rounds:
        report = EvalReport.model_validate(result.eval)
        label = "tuned" if len(rounds) == 1 else f"round-{result.number}"
        target = next(t for t in report.targets if t.label == result.label)
        targets.append(target.model_copy(update={"label": label}))
        metrics[label] = report.metrics[result.label]
    return EvalReport(
        targets=targets, metrics=metrics, no_stop=first.no_stop, concurrency=first.concurrency
    )


def _round_entry(result: RoundResult) -> dict[str, Any]:
    card = result.card
    entry: dict[str, Any] = {
        "round": result.number,
        "adapter": str(result.adapter),
        "eval_report": result.eval.get("markdown_path"),
        "trained_on": {
            "rows": card.get("examples", {}).get("train"),
            "sources": card.get("counts", {}).get("train"),
            "code_share": card.get("ratio_achieved", {}).get("train"),
        },
        "harvested_conversations": str(result.harvested_file) if result.harvested_file else None,
    }
    if result.harvest is not None:
        fresh = result.harvest["fresh"]
        entry["harvest_for_next_round"] = {
            "fresh_tasks": result.harvest["tasks"],
            "fresh_task_seed": fresh["seed"],
            "passed": result.harvest["passed"],
            "kept": result.harvest["kept"],
            "dropped": result.harvest["dropped"],
            "file": result.harvest["file"],
            "report": result.harvest["report"],
        }
    return entry


def loop_payload(
    config: DemoConfig,
    rounds: Sequence[RoundResult],
    tasks: Sequence[TaskSpec],
    merged: EvalReport,
    *,
    seconds: float,
    stage_seconds: dict[str, float],
) -> dict[str, Any]:
    """What `report.json` holds (see the module docstring)."""
    plan = split_plan(config)
    labels: dict[str, Any] = {}
    for label, per_category in merged.metrics.items():
        labels[label] = {c: m.model_dump(mode="json") for c, m in per_category.items()}
    last = "tuned" if len(rounds) == 1 else f"round-{rounds[-1].number}"
    labels["tuned"] = labels[last]
    if len(rounds) == 1:
        labels["round-1"] = labels["tuned"]
    return {
        "minutes": round(seconds / 60, 2),
        "stage_minutes": {k: round(v / 60, 2) for k, v in stage_seconds.items()},
        "rounds": len(rounds),
        "held_out_repositories": sorted({t.repo_name for t in tasks}),
        "train_repositories": list(plan.train),
        "valid_repositories": list(plan.valid),
        "tasks": len(tasks),
        "tasks_per_category": {
            c: sum(1 for t in tasks if t.category == c)
            for c in dict.fromkeys(t.category for t in tasks)
        },
        "labels": labels,
        "targets": {t.label: t.model_dump(mode="json") for t in merged.targets},
        "round_details": [_round_entry(r) for r in rounds],
    }


def rounds_markdown(payload: dict[str, Any], merged: EvalReport) -> str:
    """The report's Markdown: what ran, then the eval table with the labels side by side."""
    lines = [
        "# Punie loop",
        "",
        f"{payload['rounds']} round(s) in {payload['minutes']:.1f} min of this run; "
        f"{payload['tasks']} held-out tasks from {', '.join(payload['held_out_repositories'])} "
        f"(training repositories: {', '.join(payload['train_repositories'])}).",
        "",
    ]
    for entry in payload["round_details"]:
        trained = entry["trained_on"]
        line = f"- round {entry['round']}: trained on {trained['rows']} rows"
        sources = trained.get("sources") or {}
        if sources.get("harvested"):
            line += f" ({sources['harvested']} harvested from the previous round)"
        harvest = entry.get("harvest_for_next_round")
        if harvest:
            line += (
                f"; then answered {harvest['fresh_tasks']} fresh training-repository tasks, "
                f"{harvest['passed']} passed, {harvest['kept']} harvested for the next round"
            )
        lines.append(line + ".")
    lines += ["", markdown_table(merged)]
    return "\n".join(lines)


def write_loop_report(
    config: DemoConfig,
    rounds: Sequence[RoundResult],
    tasks: Sequence[TaskSpec],
    stages: Stages,
    *,
    seconds: float,
) -> LoopReport:
    """Write report.json, report.md and report.png at the top of the work folder."""
    merged = side_by_side(rounds)
    payload = loop_payload(
        config, rounds, tasks, merged, seconds=seconds, stage_seconds=stages.seconds
    )
    workdir = Path(config.workdir)
    paths = {
        "json": workdir / "report.json",
        "markdown": workdir / "report.md",
        "chart": workdir / "report.png",
    }
    write_text(paths["json"], json.dumps(payload, indent=2) + "\n")
    write_text(paths["markdown"], rounds_markdown(payload, merged))
    write_chart(merged, paths["chart"])
    return LoopReport(payload=payload, **paths)
