"""JSONL files of pydantic records: read with `file:line` errors, written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from punie.errors import DataError

M = TypeVar("M", bound=BaseModel)


def read_records(path: Path, model: type[M], *, what: str, fix: str) -> Iterator[M]:
    """Yield the `model` records of a JSONL file; a bad line raises DataError naming file:line.

    `what` names the file's kind in messages ("conversations"); `fix` says what to do.
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot open {what} file ({exc.strerror})") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield model.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "row"
                raise DataError(
                    f"{path}:{number}: not a {model.__name__} ({where}: {first['msg']}); {fix}"
                ) from exc


def write_records(path: Path, rows: Iterable[BaseModel], *, exclude_defaults: bool = False) -> int:
    """Write records as JSONL, atomically; return how many were written.

    Rows stream into a temporary file beside `path`, which replaces `path` only once complete,
    so an interrupted write leaves the previous file (or none) and never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(row.model_dump_json(exclude_defaults=exclude_defaults))
                out.write("\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return count
