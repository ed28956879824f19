"""Every JSONL and JSON file Punie reads or writes: `file:line` errors, atomic replaces, flushed
appends. One home, so a half-written file or a traceback on a damaged line cannot creep back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from punie.errors import DataError, first_problem

M = TypeVar("M", bound=BaseModel)


@contextlib.contextmanager
def atomic_replace(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; it replaces `path` only when the block completes.

    An exception (or Ctrl-C) inside the block leaves the previous file, or none, never a
    half-written one. `mode` is "w" (text, UTF-8) or "wb".
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_text(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically."""
    with atomic_replace(path) as out:
        out.write(text)


def write_json(path: Path, body: Any, *, indent: int | None = 2) -> None:
    """Replace `path` with `body` as JSON, atomically."""
    write_text(path, json.dumps(body, indent=indent, ensure_ascii=False, default=str) + "\n")


def read_json(path: Path, *, what: str) -> Any:
    """A JSON file's value; DataError naming the file when it is missing or damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {what} is not JSON ({exc})") from exc


def iter_json_lines(path: Path, *, what: str, fix: str) -> Iterator[tuple[int, Any]]:
    """Yield `(line number, value)` for each non-blank line of a JSONL file.

    A line that is not JSON (or not UTF-8) raises DataError naming `path:line`, what the file
    should hold and `fix`, what to do about it.
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot open {what} file ({exc.strerror})") from exc
    with handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not JSON ({exc.msg}); {fix}") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{number + 1}: not UTF-8 text; {fix}") from exc


def read_records(path: Path, model: type[M], *, what: str, fix: str) -> Iterator[M]:
    """Yield the `model` records of a JSONL file; a bad line raises DataError naming file:line.

    `what` names the file's kind in messages ("conversations"); `fix` says what to do.
    """
    for number, value in iter_json_lines(path, what=what, fix=fix):
        try:
            yield model.model_validate(value)
        except ValidationError as exc:
            where, message, _ = first_problem(exc, "row")
            raise DataError(
                f"{path}:{number}: not a {model.__name__} ({where}: {message}); {fix}"
            ) from exc


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write plain JSON rows as JSONL, atomically; return how many were written."""
    count = 0
    with atomic_replace(path) as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False))
            out.write("\n")
            count += 1
    return count


def write_records(path: Path, rows: Iterable[BaseModel], *, exclude_defaults: bool = False) -> int:
    """Write records as JSONL, atomically; return how many were written.

    Rows stream into a temporary file beside `path`, which replaces `path` only once complete,
    so an interrupted write leaves the previous file (or none) and never a half-written one.
    """
    count = 0
    with atomic_replace(path) as out:
        for row in rows:
            out.write(row.model_dump_json(exclude_defaults=exclude_defaults))
            out.write("\n")
            count += 1
    return count


def append_line(path: Path, body: BaseModel | dict[str, Any], *, fsync: bool = True) -> None:
    """Append one JSON line and flush it to disk at once, so a crash keeps every line written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body)
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        if fsync:
            os.fsync(out.fileno())
