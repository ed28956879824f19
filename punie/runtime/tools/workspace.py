"""The workspace: the one directory the code tools may touch, and the path fence around it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from punie.errors import ConfigError, ToolError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Workspace:
    """A repository root; every path a tool receives is resolved against it and fenced in it."""

    root: Path

    def __post_init__(self) -> None:
        root = Path(self.root).expanduser()
        if not root.exists():
            raise ConfigError(
                f"workspace root {str(root)!r} does not exist: pass the path of a repository"
            )
        if not root.is_dir():
            raise ConfigError(
                f"workspace root {str(root)!r} is not a directory: pass the repository folder"
            )
        object.__setattr__(self, "root", root.resolve())

    def resolve(self, path: str, *, must_exist: bool = True) -> Path:
        """Turn a tool's path (relative to the root, or absolute inside it) into a real path.

        Refuses paths that leave the root by `..`, by being absolute elsewhere, or through a
        symlink (the file itself or any directory on the way); with `must_exist`, refuses
        paths that are not there. Raises `ToolError` naming the path.
        """
        if "\x00" in path:
            raise ToolError(f"path {path!r} contains a NUL byte: give a plain file path")
        given = Path(path or ".")
        lexical = Path(os.path.normpath(given if given.is_absolute() else self.root / given))
        real = (self.root / given).resolve()  # an absolute `given` replaces the root here
        if not self._inside(real):
            if not self._inside(lexical):
                log.info("path_refused", path=path, reason="outside_root")
                raise ToolError(
                    f"path {path!r} is outside the workspace root {str(self.root)!r}: "
                    "use a path relative to the root (no '..' above it)"
                )
            link = self._escaping_link(given)
            log.info("path_refused", path=path, reason="symlink", link=str(link))
            via = f" through the symlink {self.relative_text(link)!r}" if link else ""
            raise ToolError(
                f"path {path!r} leads outside the workspace root {str(self.root)!r}{via} "
                f"(it resolves to {str(real)!r}): symlinks that leave the root are not "
                "followed; use a path to a file inside the root"
            )
        if must_exist and not real.exists():
            raise ToolError(
                f"path {path!r} does not exist in the workspace root {str(self.root)!r}: "
                "check the name, or list files with run_command('ls') or grep"
            )
        return real

    def relative(self, path: Path) -> str:
        """The path as the model should see it: relative to the root, '/'-separated."""
        real = Path(path).resolve()
        if not self._inside(real):
            raise ToolError(f"path {str(path)!r} is outside the workspace root {str(self.root)!r}")
        rel = real.relative_to(self.root).as_posix()
        return rel if rel else "."

    def relative_text(self, path: Path) -> str:
        """The path relative to the root without resolving symlinks (for messages)."""
        try:
            return path.relative_to(self.root).as_posix() or "."
        except ValueError:
            return str(path)

    def _inside(self, real: Path) -> bool:
        return real == self.root or real.is_relative_to(self.root)

    def _escaping_link(self, given: Path) -> Path | None:
        """The first symlink on the way to `given` whose target is outside the root."""
        current = self.root if not given.is_absolute() else Path(given.anchor)
        for part in given.parts[1:] if given.is_absolute() else given.parts:
            current = current.parent if part == ".." else current / part
            if current.is_symlink() and not self._inside(current.resolve()):
                return current
        return None
