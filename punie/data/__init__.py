"""Training data: the `Conversation` record, public-data converters and their reports.

`convert_file("glaive", "rows.jsonl", "out.jsonl")` streams any supported source into
Conversation JSONL and returns a `ConversionReport`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from punie.data.convert.glaive import convert_glaive
from punie.data.convert.hermes import convert_hermes
from punie.data.convert.report import ConversionReport, RowConverter, convert_rows
from punie.data.convert.sources import iter_rows, shipped_public_rows
from punie.data.convert.when2call import convert_when2call
from punie.data.convert.xlam import convert_xlam
from punie.errors import DataError
from punie.records.conversation import Conversation, Message, Meta, ToolCall, write_conversations

__all__ = [
    "CONVERTERS",
    "Conversation",
    "ConversionReport",
    "Message",
    "Meta",
    "ToolCall",
    "convert_file",
    "shipped_public_rows",
]

log = structlog.get_logger(__name__)

#: Converter per public source name, as `punie data convert NAME` takes it.
CONVERTERS: dict[str, RowConverter] = {
    "glaive": convert_glaive,
    "when2call": convert_when2call,
    "hermes": convert_hermes,
    "xlam": convert_xlam,
}


def convert_file(
    source: str,
    input: str | Path,
    out: Path,
    *,
    report_path: Path | None = None,
    limit: int | None = None,
    on_row: Callable[[], None] | None = None,
) -> ConversionReport:
    """Convert `input` (a local file or hub dataset) with the `source` converter into `out`.

    Streams row by row; `out` is replaced atomically, only when the whole input is converted.
    """
    if source not in CONVERTERS:
        raise DataError(f"unknown source {source!r}; choose one of {', '.join(CONVERTERS)}")
    report = ConversionReport(source=source, input=str(input), output=str(out))
    started = time.perf_counter()
    rows = convert_rows(iter_rows(input), CONVERTERS[source], report, limit=limit, on_row=on_row)
    write_conversations(Path(out), rows)
    report.seconds = time.perf_counter() - started
    if report_path is not None:
        report.write_json(Path(report_path))
    log.info(
        "conversion_done",
        source=source,
        rows_read=report.rows_read,
        converted=report.converted,
        rejected=report.rejected,
        seconds=round(report.seconds, 3),
    )
    return report
