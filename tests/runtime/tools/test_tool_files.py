"""read_file and write_file on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from punie.errors import ToolError
from punie.runtime.tools import Workspace, read_file, write_file


@pytest.fixture
def numbered(repo: Path) -> Path:
    (repo / "n.txt").write_text("".join(f"line {i}\n" for i in range(1, 101)))
    return repo


def test_whole_file_and_line_ranges(numbered: Path) -> None:
    ws = Workspace(numbered)
    assert read_file(ws, "README.md") == "# repo\n\nSquares and shapes.\n"
    assert read_file(ws, "n.txt", 3, 5) == "line 3\nline 4\nline 5\n"
    assert read_file(ws, "n.txt", 99) == "line 99\nline 100\n"
    assert read_file(ws, "n.txt", end_line=2) == "line 1\nline 2\n"
    assert read_file(ws, "n.txt", 100, 500) == "line 100\n"


def test_bad_ranges_are_tool_errors(numbered: Path) -> None:
    ws = Workspace(numbered)
    with pytest.raises(ToolError, match="has 100 lines; start_line 101 is past the end"):
        read_file(ws, "n.txt", 101)
    with pytest.raises(ToolError, match="start_line must be 1 or more"):
        read_file(ws, "n.txt", 0)
    with pytest.raises(ToolError, match="end_line 2 is before start_line 5"):
        read_file(ws, "n.txt", 5, 2)


def test_cap_stops_at_a_line_and_says_where_to_continue(numbered: Path) -> None:
    ws = Workspace(numbered)
    result = read_file(ws, "n.txt", max_chars=50)
    assert result.startswith("line 1\nline 2\n")
    assert result.endswith(
        "[... truncated: showed lines 1-7 of n.txt (49 characters), which has 100 lines; "
        "read on with start_line=8 ...]\n"
    )
    assert read_file(ws, "n.txt", 8, max_chars=16).startswith("line 8\nline 9\n[... truncated")
    (numbered / "wide.txt").write_text("z" * 100_000)
    wide = read_file(ws, "wide.txt", max_chars=1000)
    assert wide.startswith("z" * 1000 + "\n[... truncated: line 1 of wide.txt has 100,000")


def test_directories_binary_and_empty_files(repo: Path) -> None:
    ws = Workspace(repo)
    with pytest.raises(ToolError, match="'pkg' is a directory"):
        read_file(ws, "pkg")
    (repo / "blob.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    with pytest.raises(ToolError, match=r"'blob\.bin' looks like a binary file"):
        read_file(ws, "blob.bin")
    (repo / "empty.txt").write_text("")
    assert read_file(ws, "empty.txt") == "(empty.txt is empty)"


def test_write_is_atomic_makes_parents_and_leaves_no_temp_files(repo: Path) -> None:
    ws = Workspace(repo)
    content = "".join(f"x{i} = {i}\n" for i in range(12))
    assert write_file(ws, "deep/er/mod.py", content) == (
        f"wrote 12 lines ({len(content.encode())} bytes) to deep/er/mod.py"
    )
    assert (repo / "deep" / "er" / "mod.py").read_text() == content
    assert sorted(p.name for p in (repo / "deep" / "er").iterdir()) == ["mod.py"]
    (repo / "pkg" / "shapes.py").chmod(0o755)
    assert write_file(ws, "pkg/shapes.py", "ünïcode") == "wrote 1 line (9 bytes) to pkg/shapes.py"
    assert (repo / "pkg" / "shapes.py").read_text(encoding="utf-8") == "ünïcode"
    assert (repo / "pkg" / "shapes.py").stat().st_mode & 0o777 == 0o755  # mode is kept
    assert sorted(p.name for p in (repo / "pkg").iterdir()) == ["__init__.py", "shapes.py"]


def test_failed_write_leaves_old_content_and_no_temp_file(repo: Path) -> None:
    ws = Workspace(repo)
    with pytest.raises(ToolError, match="'pkg' is a directory"):
        write_file(ws, "pkg", "x")
    with pytest.raises(ToolError, match="a file is in the way"):
        write_file(ws, "README.md/inner.txt", "x")
    assert (repo / "README.md").read_text() == "# repo\n\nSquares and shapes.\n"
    with pytest.raises(ToolError, match="not valid Unicode text"):  # a lone surrogate
        write_file(ws, "README.md", "bad \ud800")
    assert (repo / "README.md").read_text() == "# repo\n\nSquares and shapes.\n"
    assert sorted(p.name for p in repo.iterdir()) == ["README.md", "pkg"]


def test_write_outside_root_is_refused(repo: Path, tmp_path: Path) -> None:
    ws = Workspace(repo)
    with pytest.raises(ToolError, match="outside the workspace root"):
        write_file(ws, "../escaped.txt", "x")
    with pytest.raises(ToolError, match="outside the workspace root"):
        write_file(ws, str(tmp_path / "escaped.txt"), "x")
    assert not (tmp_path / "escaped.txt").exists()
