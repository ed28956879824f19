"""Reading raw rows: JSONL, streamed JSON arrays, Parquet, the shipped sample rows."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from punie.data import convert_file
from punie.data.convert.sources import iter_rows, shipped_public_rows
from punie.errors import DataError

ROWS = [{"query": f"q{i}", "answers": "[]", "tools": "[]", "text": "x" * i} for i in range(5)]


def test_jsonl_bad_line_is_a_row_error_not_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{broken\n\n" + json.dumps(ROWS[1]) + "\n")
    rows = list(iter_rows(path))
    assert [(r.row_id, r.record, r.error is not None) for r in rows] == [
        ("1", ROWS[0], False),
        ("2", None, True),
        ("4", ROWS[1], False),
    ]


def test_json_array_streams_across_chunk_boundaries(tmp_path: Path, monkeypatch) -> None:
    import punie.data.convert.sources as sources

    monkeypatch.setattr(sources, "_CHUNK", 7)  # every row spans several reads
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS, indent=2))
    assert [r.record for r in iter_rows(path)] == ROWS


def test_parquet_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert [r.record for r in iter_rows(path)] == ROWS


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("rows.jsonl", "query,answers\n1,2\n", "not JSON lines"),
        ("rows.json", "hello", "not a JSON array"),
        ("rows.json", '[{"a": 1}, {"b": ', "invalid JSON"),
        ("rows.csv", "a,b\n", "unknown file type"),
        ("rows.parquet", "not parquet", "not a readable Parquet file"),
    ],
)
def test_wrong_format_is_one_data_error(tmp_path: Path, name: str, content: str, problem: str):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=problem) as caught:
        list(iter_rows(path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_shipped_rows_convert(tmp_path: Path) -> None:
    files = shipped_public_rows()
    assert sorted(files) == ["glaive", "hermes", "when2call", "xlam"]
    converted = {}
    for source, path in files.items():
        report = convert_file(source, path, tmp_path / f"{source}.jsonl")
        converted[source] = (report.rows_read, report.converted)
    assert converted == {
        "glaive": (76, 60),
        "when2call": (12, 12),
        "hermes": (4, 3),
        "xlam": (2, 2),
    }
