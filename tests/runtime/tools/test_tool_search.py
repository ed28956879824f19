"""grep: real ripgrep over a real repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from punie.errors import ToolError
from punie.runtime.tools import Workspace, find_ripgrep, grep


def test_ripgrep_comes_from_the_environment() -> None:
    assert Path(find_ripgrep()).name.startswith("rg")


def test_output_is_path_line_text_relative_to_root(repo: Path) -> None:
    result = grep(Workspace(repo), r"def area")
    assert result.splitlines() == [
        "pkg/shapes.py:2:     def area(self) -> float:",
        "pkg/shapes.py:10:     def area(self) -> float:",
    ]


def test_path_glob_and_case_options(repo: Path) -> None:
    ws = Workspace(repo)
    assert grep(ws, "squares", ignore_case=True) == "README.md:3: Squares and shapes."
    assert grep(ws, "Square", "pkg") == "pkg/shapes.py:6: class Square(Shape):"
    assert grep(ws, "Square", "pkg/shapes.py").startswith("pkg/shapes.py:6: ")
    assert grep(ws, "shapes", glob="*.md") == "README.md:3: Squares and shapes."


def test_no_match_says_so(repo: Path) -> None:
    assert grep(Workspace(repo), "Triangle") == "no matches for 'Triangle' in '.'"
    assert grep(Workspace(repo), "Square", glob="*.txt") == (
        "no matches for 'Square' in '.' (files matching '*.txt')"
    )


def test_bad_regex_is_a_tool_error_with_rg_message(repo: Path) -> None:
    with pytest.raises(ToolError, match="not a valid regular expression") as info:
        grep(Workspace(repo), "area(")
    assert "unclosed group" in str(info.value)


def test_max_matches_stops_and_says_so(repo: Path) -> None:
    (repo / "many.txt").write_text("".join(f"hit {i}\n" for i in range(1000)))
    result = grep(Workspace(repo), "hit", max_matches=5)
    lines = result.splitlines()
    assert lines[:5] == [f"many.txt:{i + 1}: hit {i}" for i in range(5)]
    assert "stopped at 5 matching lines" in lines[5]


def test_paths_outside_root_are_refused(repo: Path) -> None:
    with pytest.raises(ToolError, match="outside the workspace root"):
        grep(Workspace(repo), "x", "..")


def test_ignore_files_above_the_root_do_not_hide_the_repository(tmp_path: Path) -> None:
    # A uv virtual environment's `.gitignore` holds `*`; a package inside it is still searchable.
    (tmp_path / ".gitignore").write_text("*\n")
    root = tmp_path / "site-packages" / "pkg"
    root.mkdir(parents=True)
    (root / "mod.py").write_text("def needle():\n    pass\n")
    ws = Workspace(root)
    assert grep(ws, "def needle") == grep(ws, "def needle", glob="*.py")
    assert "mod.py:1:" in grep(ws, "def needle")
