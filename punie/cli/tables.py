"""Rich tables for the reports the `punie data` commands print (the reports stay plain data)."""

from __future__ import annotations

from rich.table import Table

from punie.data.convert.report import ConversionReport
from punie.data.generate.report import GenerationReport
from punie.data.harvest import HarvestReport
from punie.data.mix import SPLITS, DatasetCard


def conversion_table(report: ConversionReport) -> Table:
    """The totals, then one line per kind and per skip reason."""
    table = Table(title=f"convert {report.source}: {report.input}")
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    total = report.rows_read or 1

    def add(label: str, count: int) -> None:
        table.add_row(label, str(count), f"{100 * count / total:.2f}%")

    add("read", report.rows_read)
    add("converted", report.converted)
    for kind, count in report.kinds.most_common():
        add(f"  kind {kind}", count)
    add("skipped", report.rejected)
    for reason, count in report.skipped.most_common():
        add(f"  {reason}", count)
    return table


def generation_table(report: GenerationReport) -> Table:
    """Tasks per kind and category, then what was skipped and the total."""
    title = f"generate: {report.repo_name} ({report.total} tasks, seed {report.seed}"
    table = Table(title=f"{title}, {report.phrasing} phrasing)")
    table.add_column("kind")
    table.add_column("tasks", justify="right")
    for kind, count in sorted(report.kept.items()):
        table.add_row(kind, str(count))
    for category, count in sorted(report.categories.items()):
        table.add_row(f"[dim]category {category}[/dim]", str(count))
    for reason, count in report.skipped.most_common():
        table.add_row(f"[yellow]skipped: {reason}[/yellow]", str(count))
    table.add_row("[bold]total[/bold]", str(report.total))
    return table


def harvest_table(report: HarvestReport) -> Table:
    """Runs read, dropped per reason, kept, and what was redacted or truncated."""
    table = Table(title="harvest: " + ", ".join(report.traces))
    table.add_column("what")
    table.add_column("runs", justify="right")
    table.add_row("runs read", str(report.runs_read))
    for reason, count in report.dropped.most_common():
        table.add_row(f"[yellow]dropped: {reason}[/yellow]", str(count))
    table.add_row("[bold]kept[/bold]", str(report.kept))
    for kind, count in report.redacted.most_common():
        table.add_row(f"[dim]secrets redacted: {kind}[/dim]", str(count))
    table.add_row("[dim]tool results truncated[/dim]", str(report.truncated_results))
    return table


def card_tables(card: DatasetCard) -> list[Table]:
    """Rows per source and split, tokens per conversation, and dropped conversations."""
    counts = Table(title=f"mix: {card.out_dir}")
    counts.add_column("source")
    for split in SPLITS:
        counts.add_column(split, justify="right")
    sources = sorted({s for per in card.counts.values() for s in per})
    for source in sources:
        counts.add_row(source, *(str(card.counts[s].get(source, 0)) for s in SPLITS))
    counts.add_row(
        "[bold]code share[/bold]",
        *(
            "-" if card.ratio_achieved[s] is None else f"{card.ratio_achieved[s]:.3f}"
            for s in SPLITS
        ),
    )
    counts.add_row("[bold]rows written[/bold]", *(str(card.examples[s]) for s in SPLITS))
    lengths = Table(title="tokens per conversation")
    lengths.add_column("split")
    for column in ("min", "mean", "median", "p95", "max"):
        lengths.add_column(column, justify="right")
    for split in SPLITS:
        stats = card.tokens.get(split) or {}
        lengths.add_row(
            split, *(f"{stats.get(c, 0):g}" for c in ("min", "mean", "median", "p95", "max"))
        )
    dropped = Table(title="dropped conversations")
    dropped.add_column("reason")
    dropped.add_column("count", justify="right")
    for reason, count in sorted(card.dropped.items()):
        dropped.add_row(reason, str(count))
    return [counts, lengths, dropped]
