"""The eval report: targets side by side in one Markdown table, with JSON, a PNG chart and the
results JSONL (one row per run) beside it.

The results JSONL is a contract: the verified harvest keeps the traced runs whose `run_id` has
`"passed": true` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog
from pydantic import BaseModel, Field

from punie.evaluation.metrics import Metrics, RunScore, metrics_by_category
from punie.records.jsonl import write_text

log = structlog.get_logger(__name__)

# (attribute, heading, kind): kind "rate" prints as a percentage, "mean" with one decimal.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("termination_rate", "terminated", "rate"),
    ("loop_rate", "loop", "rate"),
    ("degenerate_rate", "degenerate", "rate"),
    ("tool_selection_accuracy", "tool selection", "rate"),
    ("argument_accuracy", "arguments (strict)", "rate"),
    ("argument_accuracy_executed", "arguments (executed)", "rate"),
    ("answer_accuracy", "answer", "rate"),
    ("pass_rate", "passed (strict)", "rate"),
    ("pass_rate_executed", "passed (executed)", "rate"),
    ("clean_stop_rate", "clean stop", "rate"),
    ("invented_turn_rate", "invented turns", "rate"),
    ("turns_per_task", "turns/task", "mean"),
    ("output_tokens_per_task", "out tokens/task", "mean"),
    ("tokens_after_end_per_task", "tokens after end/task", "mean"),
)
CHART_COLUMNS = (
    "termination_rate",
    "tool_selection_accuracy",
    "argument_accuracy",
    "argument_accuracy_executed",
    "answer_accuracy",
    "clean_stop_rate",
    "loop_rate",
)


class TargetInfo(BaseModel):
    """What one label of the report ran: model, adapter, wire settings, tokenizer, traces."""

    label: str
    model: str
    adapter: str | None = None
    base_url: str | None = None
    stop_sequences: list[str] = Field(default_factory=list)
    client_cut: bool = True
    frequency_penalty: float | None = None
    """Sent with every request (None: not sent)."""
    tokenizer: str
    traces: str


class EvalReport(BaseModel):
    """Metrics per label and category, and where the report's files are."""

    targets: list[TargetInfo]
    metrics: dict[str, dict[str, Metrics]]
    """label -> category (and "overall") -> metrics."""
    no_stop: bool = False
    concurrency: int = 1
    markdown_path: str | None = None
    json_path: str | None = None
    chart_path: str | None = None
    results_path: str | None = None

    def overall(self, label: str) -> Metrics:
        return self.metrics[label]["overall"]


def build_report(
    targets: Sequence[TargetInfo],
    scores: Sequence[RunScore],
    *,
    no_stop: bool = False,
    concurrency: int = 1,
) -> EvalReport:
    """Aggregate scored runs into per-label, per-category metrics."""
    metrics = {
        t.label: metrics_by_category([s for s in scores if s.label == t.label]) for t in targets
    }
    return EvalReport(
        targets=list(targets), metrics=metrics, no_stop=no_stop, concurrency=concurrency
    )


def _cell(metrics: Metrics, attribute: str, kind: str) -> str:
    """A mean with one decimal; a rate as `50% (15–85%, n=4)`: Wilson 95% interval, tasks."""
    value = getattr(metrics, attribute)
    if value is None:
        return "–"
    if kind != "rate":
        return f"{value:.1f}"
    interval = metrics.rates.get(attribute)
    if interval is None:
        return f"{value * 100:.0f}%"
    return (
        f"{value * 100:.0f}% ({interval.low * 100:.0f}–{interval.high * 100:.0f}%, n={interval.n})"
    )


def markdown_table(report: EvalReport) -> str:
    """The report as Markdown: overall metrics with labels side by side, then per category."""
    labels = [t.label for t in report.targets]
    lines = ["## Overall", "", "| metric | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---:|" * len(labels))
    for attribute, heading, kind in COLUMNS:
        cells = [_cell(report.overall(label), attribute, kind) for label in labels]
        lines.append(f"| {heading} | " + " | ".join(cells) + " |")
    runs = [str(report.overall(label).runs) for label in labels]
    lines.append("| runs | " + " | ".join(runs) + " |")

    lines += ["", "## Per category", ""]
    lines.append("| category | label | runs | " + " | ".join(h for _, h, _ in COLUMNS) + " |")
    lines.append("|---|---|---:|" + "---:|" * len(COLUMNS))
    categories = list(dict.fromkeys(c for label in labels for c in report.metrics[label]))
    categories = [c for c in categories if c != "overall"] + ["overall"]
    for category in categories:
        for label in labels:
            m = report.metrics[label].get(category)
            if m is None:
                continue
            cells = [_cell(m, attribute, kind) for attribute, _, kind in COLUMNS]
            lines.append(f"| {category} | {label} | {m.runs} | " + " | ".join(cells) + " |")

    lines += ["", "## Targets", ""]
    for t in report.targets:
        stop = ", ".join(repr(s) for s in t.stop_sequences) or "none"
        adapter = f" + adapter {t.adapter}" if t.adapter else ""
        penalty = t.frequency_penalty
        penalty = f"; frequency penalty {penalty:g}" if penalty is not None else ""
        lines.append(
            f"- **{t.label}**: {t.model}{adapter}; stop sequences {stop}; client cut "
            f"{'on' if t.client_cut else 'off'}{penalty}; tokens counted with {t.tokenizer}; "
            f"traces {t.traces}"
        )
    lines.append("")
    lines.append(
        "Tokens after end: tokens generated after a reply's first end-of-turn marker, summed "
        "over the run's replies (0 when the server stopped at the marker). Clean stop: ended "
        "`answered` with none. Invented turns: runs with a reply that went on past its end to "
        "write the next turn's role header (`<|im_start|>user`). Arguments (strict): "
        "BFCL-style names, types and values; "
        "arguments (executed): the same names and types, any values whose real result still "
        "holds the expected facts. Passed: answered, right tool, arguments and answer, nothing "
        "after the end. Rates show their Wilson 95% interval and the number of tasks."
    )
    return "\n".join(lines) + "\n"


def write_chart(report: EvalReport, path: Path) -> Path:
    """A grouped bar chart of the main rates, one bar per label (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [t.label for t in report.targets]
    headings = {a: h for a, h, _ in COLUMNS}
    x = np.arange(len(CHART_COLUMNS))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, label in enumerate(labels):
        overall = report.overall(label)
        values = [(getattr(overall, a) or 0.0) * 100 for a in CHART_COLUMNS]
        spans = [overall.rates.get(a) for a in CHART_COLUMNS]
        below = [
            max(0.0, v - r.low * 100) if r else 0.0 for v, r in zip(values, spans, strict=True)
        ]
        above = [
            max(0.0, r.high * 100 - v) if r else 0.0 for v, r in zip(values, spans, strict=True)
        ]
        ax.bar(
            x + (i - (len(labels) - 1) / 2) * width,
            values,
            width,
            yerr=[below, above],
            capsize=3,
            label=label,
        )
    ax.set_xticks(x, [headings[a] for a in CHART_COLUMNS])
    ax.set_ylabel("% of tasks (Wilson 95% interval)")
    ax.set_ylim(0, 100)
    ax.set_title("Punie eval" + (" (no stop sequences, no client cut)" if report.no_stop else ""))
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(report: EvalReport, scores: Sequence[RunScore], out_dir: Path) -> EvalReport:
    """Write report.md, report.json, report.png and results.jsonl into `out_dir`."""
    out_dir = Path(out_dir)
    paths = {
        "markdown_path": out_dir / "report.md",
        "json_path": out_dir / "report.json",
        "chart_path": out_dir / "report.png",
        "results_path": out_dir / "results.jsonl",
    }
    report = report.model_copy(update={k: str(v) for k, v in paths.items()})
    write_text(paths["markdown_path"], markdown_table(report))
    write_text(paths["json_path"], report.model_dump_json(indent=2) + "\n")
    write_text(paths["results_path"], "".join(s.model_dump_json() + "\n" for s in scores))
    write_chart(report, paths["chart_path"])
    log.info("eval_report_written", out_dir=str(out_dir), runs=len(scores))
    return report
