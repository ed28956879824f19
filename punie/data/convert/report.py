"""Running a converter over a stream of rows, and the report it leaves: rows read, converted,
skipped per named reason, kinds of conversation, and the yield (JSON; the CLI draws a table).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from punie.data.convert.sources import RawRow
from punie.errors import DataError
from punie.records.conversation import Conversation, RowRejected
from punie.records.jsonl import write_json

log = structlog.get_logger(__name__)

#: Reason given to a row whose shape the converter does not know at all.
UNRECOGNISED = "unrecognised_shape"


RowConverter = Callable[[Any, str], Conversation]


@dataclass
class ConversionReport:
    """Counts for one conversion run."""

    source: str
    input: str
    output: str | None = None
    rows_read: int = 0
    converted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(self.skipped.values())

    @property
    def yield_rate(self) -> float:
        """Converted rows over rows read (1.0 for an empty input)."""
        return self.converted / self.rows_read if self.rows_read else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "input": self.input,
            "output": self.output,
            "rows_read": self.rows_read,
            "converted": self.converted,
            "rejected": self.rejected,
            "yield": round(self.yield_rate, 6),
            "rejection_rate": round(1 - self.yield_rate, 6),
            "skipped": dict(self.skipped.most_common()),
            "kinds": dict(self.kinds.most_common()),
            "first_skipped_row_per_reason": self.examples,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_read / self.seconds, 1) if self.seconds else None,
        }

    def write_json(self, path: Path) -> None:
        """Write the report as JSON, atomically."""
        write_json(Path(path), self.to_dict())


def convert_rows(
    rows: Iterable[RawRow],
    convert: RowConverter,
    report: ConversionReport,
    *,
    limit: int | None = None,
    on_row: Callable[[], None] | None = None,
) -> Iterator[Conversation]:
    """Convert rows lazily, counting every outcome in `report`; malformed rows never stop it.

    The first row failing with `unrecognised_shape` means the whole file is the wrong format:
    that raises DataError instead of skipping every row one by one.
    """
    for raw in rows:
        if limit is not None and report.rows_read >= limit:
            break
        report.rows_read += 1
        if on_row is not None:
            on_row()
        if raw.error is not None:
            _skip(report, raw.row_id, raw.error.split(":", 1)[0])
            continue
        try:
            conversation = convert(raw.record, raw.row_id)
        except RowRejected as exc:
            if exc.reason == UNRECOGNISED and report.rows_read == 1:
                raise DataError(
                    f"{report.input}: row {raw.row_id} is not {report.source} data ({exc.detail}); "
                    "pick the converter that matches the file"
                ) from exc
            _skip(report, raw.row_id, exc.reason)
            log.debug("row_skipped", row_id=raw.row_id, reason=exc.reason, detail=exc.detail)
            continue
        report.converted += 1
        report.kinds[conversation.meta.kind or "unknown"] += 1
        yield conversation


def _skip(report: ConversionReport, row_id: str, reason: str) -> None:
    report.skipped[reason] += 1
    report.examples.setdefault(reason, row_id)
