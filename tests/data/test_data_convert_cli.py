"""`punie data convert` as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from punie.records.conversation import read_conversations
from tests.conftest import SHARED_DATA

PUNIE = str(Path(sys.executable).with_name("punie"))


def _punie(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PUNIE, *args], capture_output=True, text=True, timeout=120)


def _glaive_lines() -> list[str]:
    path = SHARED_DATA / "glaive_real_rows.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    return path.read_text().splitlines()


def test_convert_with_malformed_rows_and_report(tmp_path: Path) -> None:
    lines = _glaive_lines()
    source = tmp_path / "glaive.jsonl"
    # Malformed rows in the middle: bad JSON, a number, a row of another data set.
    source.write_text("\n".join([*lines[:2], "{not json", "42", '{"query": "q"}', *lines[2:]]))
    out, report_path = tmp_path / "out.jsonl", tmp_path / "report.json"
    result = _punie(
        "data", "convert", "glaive", str(source), "--out", str(out), "--report", str(report_path)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["rows_read"] == 41
    assert report["converted"] == 22
    assert report["skipped"] == {
        "call_without_schema": 13,
        "unrecognised_shape": 2,
        "turns_not_separated": 2,
        "bad_json": 1,
        "no_chat": 1,
    }
    assert report["kinds"] == {"tool_call": 13, "direct_answer": 7, "refusal": 2}
    assert len(list(read_conversations(out))) == 22
    assert "call_without_schema" in result.stdout  # the summary table


def test_limit(tmp_path: Path) -> None:
    source = tmp_path / "glaive.jsonl"
    source.write_text("\n".join(_glaive_lines()))
    out = tmp_path / "out.jsonl"
    result = _punie("data", "convert", "glaive", str(source), "--out", str(out), "--limit", "2")
    assert result.returncode == 0, result.stderr
    assert [c.meta.row_id for c in read_conversations(out)] == ["25475", "107105"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("folder", "is a folder"),
        ("csv", "not JSON lines"),
        ("other_dataset", "is not glaive data"),
        ("unreadable", "cannot read"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    if setup == "folder":
        path.mkdir()
    elif setup == "csv":
        path.write_text("a,b,c\n1,2,3\n")
    elif setup == "other_dataset":
        path.write_text('{"query": "q", "answers": "[]", "tools": "[]"}\n')
    elif setup == "unreadable":
        path.write_text("{}\n")
        path.chmod(0)
        if _readable(path):
            pytest.skip("running as root: every file is readable")
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    result = _punie("data", "convert", "glaive", str(path), "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr
    assert out.read_text() == "previous\n"  # the previous output survives


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True
