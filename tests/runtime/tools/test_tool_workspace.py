"""The path fence: escapes by '..', absolute paths and symlinks are refused, naming the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from punie.errors import ConfigError, ToolError
from punie.runtime.tools import Workspace, read_file, write_file


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not read\n")
    return secret


def test_root_is_resolved_and_must_be_a_directory(repo: Path, tmp_path: Path) -> None:
    assert Workspace(repo / "pkg" / "..").root == repo.resolve()
    with pytest.raises(ConfigError, match="does not exist"):
        Workspace(tmp_path / "nope")
    with pytest.raises(ConfigError, match="not a directory"):
        Workspace(repo / "README.md")


@pytest.mark.parametrize("path", ["..", "../outside/secret.txt", "pkg/../../outside/secret.txt"])
def test_dotdot_escapes_are_refused(repo: Path, outside: Path, path: str) -> None:
    with pytest.raises(ToolError, match="outside the workspace root") as info:
        Workspace(repo).resolve(path)
    assert repr(path) in str(info.value)


def test_absolute_path_outside_is_refused_inside_is_allowed(repo: Path, outside: Path) -> None:
    ws = Workspace(repo)
    with pytest.raises(ToolError, match="outside the workspace root") as info:
        ws.resolve(str(outside))
    assert str(outside) in str(info.value)
    assert str(repo) not in str(info.value)  # the machine's own root never reaches the model
    with pytest.raises(ToolError, match="outside"):
        ws.resolve("/etc/passwd")
    assert ws.resolve(str(repo / "pkg" / "shapes.py")) == repo / "pkg" / "shapes.py"


def test_harmless_dotdot_and_missing_paths(repo: Path) -> None:
    ws = Workspace(repo)
    assert ws.resolve("pkg/../README.md") == repo / "README.md"
    assert ws.resolve(".") == repo
    assert ws.resolve("") == repo
    with pytest.raises(ToolError, match="does not exist") as info:
        ws.resolve("pkg/nothing.py")
    assert "'pkg/nothing.py'" in str(info.value)
    assert ws.resolve("new/dir/file.py", must_exist=False) == repo / "new" / "dir" / "file.py"


def test_symlinked_file_leaving_root_is_refused(repo: Path, outside: Path) -> None:
    (repo / "link.txt").symlink_to(outside)
    ws = Workspace(repo)
    with pytest.raises(ToolError, match=r"symlink 'link\.txt'") as info:
        ws.resolve("link.txt")
    assert "'link.txt'" in str(info.value)
    with pytest.raises(ToolError, match="leads outside"):
        read_file(ws, "link.txt")


def test_path_through_symlinked_directory_leaving_root_is_refused(
    repo: Path, outside: Path
) -> None:
    (repo / "pkg" / "vendor").symlink_to(outside.parent, target_is_directory=True)
    ws = Workspace(repo)
    for path in ["pkg/vendor/secret.txt", str(repo / "pkg" / "vendor" / "secret.txt")]:
        with pytest.raises(ToolError, match="symlink 'pkg/vendor'") as info:
            ws.resolve(path)
        assert repr(path) in str(info.value)
    # '..' after a symlink goes up from the link's target, not from the link
    with pytest.raises(ToolError, match="leads outside"):
        ws.resolve("pkg/vendor/../outside/secret.txt")
    with pytest.raises(ToolError, match="leads outside"):
        write_file(ws, "pkg/vendor/new.txt", "x")
    assert not (outside.parent / "new.txt").exists()
    assert outside.read_text() == "do not read\n"


def test_symlinks_inside_root_are_followed(repo: Path) -> None:
    (repo / "alias.py").symlink_to(repo / "pkg" / "shapes.py")
    (repo / "src").symlink_to(repo / "pkg", target_is_directory=True)
    ws = Workspace(repo)
    assert ws.resolve("alias.py") == repo / "pkg" / "shapes.py"
    assert ws.relative(ws.resolve("src/shapes.py")) == "pkg/shapes.py"


def test_relative_names_paths_from_root(repo: Path, tmp_path: Path) -> None:
    ws = Workspace(repo)
    assert ws.relative(repo) == "."
    assert ws.relative(repo / "pkg" / "shapes.py") == "pkg/shapes.py"
    with pytest.raises(ToolError, match="outside"):
        ws.relative(tmp_path)


def test_a_missing_path_is_named_without_the_machine_s_root(repo: Path) -> None:
    """The same result on every machine: training data and traces hold no absolute root."""
    from punie.runtime.tools import grep

    ws = Workspace(repo)
    for call in (lambda: read_file(ws, "pkg/nope.py"), lambda: grep(ws, "x", "nope")):
        with pytest.raises(ToolError) as info:
            call()
        message = str(info.value)
        assert "does not exist in this repository" in message
        assert str(ws.root) not in message
