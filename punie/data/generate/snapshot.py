"""Copies of repositories the tools cannot see in place (an installed package in `.venv`)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import platformdirs
import structlog

from punie.data.generate.results import grep_found_nothing
from punie.runtime.tools import Workspace, grep

log = structlog.get_logger(__name__)


def visible_to_tools(root: Path) -> bool:
    """Whether the grep tool sees the Python files under `root`.

    ripgrep honours the .gitignore files above a folder, so an installed package inside a
    git-ignored virtual environment (uv writes `.venv/.gitignore` holding `*`) looks empty to it.
    """
    return not grep_found_nothing(grep(Workspace(root), ".", max_matches=1))


def snapshot_repository(repo: Path, into: Path, name: str) -> Path:
    """Copy `repo`'s files (no hidden ones, no `__pycache__`) to `into/<name>-<digest>`, once.

    The digest covers every file's path, size and mtime, so a changed tree gets a new snapshot;
    the copy is built beside its target and renamed into place, so it is complete or absent.
    """
    repo = Path(repo).resolve()
    digest = hashlib.sha1()
    files: list[Path] = []
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            digest.update(f"{rel.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            files.append(rel)
    target = Path(into) / f"{name}-{digest.hexdigest()[:12]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for rel in files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, staging / rel)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():  # another process may have won the rename
            raise
    log.info("repository_snapshot", source=str(repo), snapshot=str(target), files=len(files))
    return target


def default_snapshot_dir() -> Path:
    """Where snapshots of repositories the tools cannot see in place are kept."""
    return platformdirs.user_cache_path("punie") / "repos"
