"""Reading raw public rows, one at a time: local JSONL / JSON / Parquet files, or a Hugging Face
dataset streamed from the hub, plus the sample rows shipped in `datasets/public/`.

Every reader streams: memory stays flat however large the input is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from punie.errors import DataError
from punie.shipped import shipped_path

log = structlog.get_logger(__name__)

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CHUNK = 1 << 20
_PARQUET_BATCH = 1024


@dataclass(frozen=True)
class RawRow:
    """One input row: its id, the decoded record, or why it could not be decoded."""

    row_id: str
    record: Any = None
    error: str | None = None


def iter_rows(source: str | Path, *, split: str = "train") -> Iterator[RawRow]:
    """Yield the rows of a local file (.jsonl, .json, .parquet) or of a hub dataset `owner/name`.

    An unreadable file or one in the wrong format raises DataError; a single malformed line
    comes back as a RawRow with `error` set, so the caller can skip it and go on.
    """
    path = Path(source)
    if path.exists():
        if path.is_dir():
            raise DataError(f"{path}: is a folder; give a .jsonl, .json or .parquet file")
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        if suffix in (".jsonl", ".ndjson"):
            return _iter_jsonl(path)
        if suffix == ".json":
            return _iter_json(path)
        if suffix == ".parquet":
            return _iter_parquet(path)
        raise DataError(
            f"{path}: unknown file type {path.suffix or '(none)'!r}; "
            "give a .jsonl, .json or .parquet file"
        )
    if _HUB_NAME.match(str(source)) and not path.suffix:
        return _iter_hub(str(source), split)
    raise DataError(
        f"{source}: no such file; give a local .jsonl/.json/.parquet file or owner/name"
    )


def _open_text(path: Path):
    try:
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc


def _iter_jsonl(path: Path) -> Iterator[RawRow]:
    handle = _open_text(path)
    decoded_any = False
    with handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{number + 1}: not UTF-8 text; is it a JSONL file?"
                ) from exc
            if not line:
                break
            number += 1
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if not decoded_any:
                    raise DataError(
                        f"{path}:{number}: not JSON lines ({exc.msg}); "
                        "give one JSON object per line"
                    ) from exc
                yield RawRow(row_id=str(number), error=f"bad_json: {exc.msg}")
                continue
            decoded_any = True
            yield RawRow(row_id=str(number), record=record)


def _iter_json(path: Path) -> Iterator[RawRow]:
    """A JSON array (or one object) decoded element by element, never loaded whole."""
    handle = _open_text(path)
    decoder = json.JSONDecoder()
    with handle:
        buffer = _read(handle, path)
        pos = _skip_ws(buffer, 0)
        if pos >= len(buffer):
            raise DataError(f"{path}: empty file; give a JSON array of rows")
        if buffer[pos] == "{":
            record, _ = _decode_one(decoder, handle, path, buffer, pos)[0]
            yield RawRow(row_id="0", record=record)
            return
        if buffer[pos] != "[":
            raise DataError(f"{path}: not a JSON array or object (starts with {buffer[pos]!r})")
        pos += 1
        index = 0
        while True:
            buffer, pos = _refill(handle, path, buffer, pos)
            if pos >= len(buffer):
                raise DataError(f"{path}: the JSON array is cut off after {index} rows")
            if buffer[pos] == "]":
                return
            if buffer[pos] == "," and index:
                pos += 1
                buffer, pos = _refill(handle, path, buffer, pos)
            (record, pos), buffer = _decode_one(decoder, handle, path, buffer, pos)
            yield RawRow(row_id=str(index), record=record)
            index += 1


def _read(handle, path: Path) -> str:
    try:
        return handle.read(_CHUNK)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text; is it a JSON file?") from exc


def _skip_ws(buffer: str, pos: int) -> int:
    while pos < len(buffer) and buffer[pos] in " \t\r\n":
        pos += 1
    return pos


def _refill(handle, path: Path, buffer: str, pos: int) -> tuple[str, int]:
    """Skip whitespace, reading more text when the buffer runs out."""
    pos = _skip_ws(buffer, pos)
    while pos >= len(buffer):
        more = _read(handle, path)
        if not more:
            return "", 0
        buffer, pos = more, _skip_ws(more, 0)
    return buffer, pos


def _decode_one(decoder: json.JSONDecoder, handle, path: Path, buffer: str, pos: int):
    """Decode one value at `pos`, reading more text until it is complete."""
    buffer = buffer[pos:]
    while True:
        try:
            value, end = decoder.raw_decode(buffer)
            return (value, end), buffer
        except json.JSONDecodeError as exc:
            more = _read(handle, path)
            if not more:
                raise DataError(f"{path}: invalid JSON ({exc.msg}); is the file complete?") from exc
            buffer += more


def _iter_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    index = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
        for record in batch.to_pylist():
            yield RawRow(row_id=str(index), record=record)
            index += 1


def _iter_hub(name: str, split: str) -> Iterator[RawRow]:
    """Stream a Hugging Face dataset; only used when the hub is reachable."""
    import datasets

    try:
        stream = datasets.load_dataset(name, split=split, streaming=True)
        for index, record in enumerate(stream):
            yield RawRow(row_id=str(index), record=record)
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DataError(
            f"{name}: cannot stream the hub dataset ({type(exc).__name__}); "
            "download it and pass the local .json/.jsonl/.parquet file"
        ) from exc


def shipped_public_rows() -> dict[str, Path]:
    """The public sample rows shipped in `datasets/public/`, by source name.

    Keys: `glaive`, `when2call`, `hermes` (free to train on) and `xlam` (CC-BY-NC-4.0: keep it
    out of anything trained by default). Raises DataError when the folder is missing.
    """
    folder = shipped_path("datasets", "public")
    files = {
        "glaive": folder / "glaive_function_calling_v2.jsonl",
        "when2call": folder / "when2call.jsonl",
        "hermes": folder / "hermes_function_calling_v1.jsonl",
        "xlam": folder / "xlam_function_calling_60k.jsonl",
    }
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DataError(
            f"shipped public rows missing: {', '.join(missing)}; reinstall punie or run from a "
            "full clone"
        )
    return files
