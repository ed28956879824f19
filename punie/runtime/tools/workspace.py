"""The workspace: the one directory the code tools may touch, and the fence around it.

Paths are resolved by file descriptor (see `punie.runtime.tools.fence`), files are opened relative
to the folder descriptor the walk ended on, and special files (FIFOs, devices, sockets) are refused
before they are opened, so what is checked is what is read or written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from punie.errors import ConfigError, ToolError
from punie.records.tool_result import ErrorKind
from punie.runtime.tools.fence import FenceError, Walked, kind_of, open_dir, walk
from punie.runtime.tools.policy import control_path

log = structlog.get_logger(__name__)

MAX_PATH_CHARS = 4096
MAX_NAME_BYTES = 255


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
        with self.walk(path, stop_at_missing=not must_exist) as walked:
            if must_exist and walked.name is not None and walked.st is None:
                raise self._missing(path)
            return self.root.joinpath(walked.relative)

    @contextmanager
    def walk(
        self, path: str, *, create_dirs: bool = False, stop_at_missing: bool = False
    ) -> Iterator[Walked]:
        """Resolve `path` by descriptor; the folder descriptor is closed on leaving."""
        parts = self._parts(path)
        root_fd = open_dir(str(self.root))
        try:
            walked = walk(
                root_fd,
                str(self.root),
                parts,
                create_dirs=create_dirs,
                stop_at_missing=stop_at_missing,
            )
        except FenceError as exc:
            raise self._refusal(path, exc) from None
        except OSError as exc:
            raise ToolError(f"path {_short(path)!r} cannot be used: {exc.strerror}") from None
        finally:
            os.close(root_fd)
        try:
            yield walked
        finally:
            os.close(walked.dir_fd)

    @contextmanager
    def open_read(self, path: str) -> Iterator[tuple[int, str, os.stat_result]]:
        """Open a regular file for reading; yields (fd, relative path, stat). Refuses folders,
        FIFOs, devices and sockets without opening them."""
        with self.walk(path) as walked:
            rel = walked.relative
            if walked.name is None or (walked.st is not None and stat.S_ISDIR(walked.st.st_mode)):
                raise ToolError(
                    f"{rel!r} is a directory, not a file: list it with run_command('ls {rel}') "
                    "or search it with grep",
                    ErrorKind.IS_DIRECTORY,
                )
            if walked.st is None:
                raise self._missing(path)
            if not stat.S_ISREG(walked.st.st_mode):
                raise _special(rel, walked.st)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(walked.name, flags, dir_fd=walked.dir_fd)
            except OSError as exc:
                raise ToolError(f"could not open {rel!r}: {exc.strerror}") from None
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):  # swapped since the lstat
                    raise _special(rel, st)
                yield fd, rel, st
            finally:
                os.close(fd)

    def check_writable(self, rel: str, path: str) -> None:
        """Refuse writes to the repository's control paths (`.git`, `.venv`, ...)."""
        control = control_path(rel)
        if control is not None:
            log.info("path_refused", path=path, reason="control_path", control=control)
            raise ToolError(
                f"path {_short(path)!r} is inside {control!r}, which no tool may change (writing "
                "it would run code on the host, e.g. git hooks or core.fsmonitor): edit the "
                "project's own files instead"
            )

    def relative(self, path: Path) -> str:
        """The path as the model should see it: relative to the root, '/'-separated."""
        real = Path(path).resolve()
        if not self._inside(real):
            raise ToolError(
                f"path {self.relative_text(Path(path))!r} is outside the workspace root"
            )
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

    def _parts(self, path: str) -> list[str]:
        """The components of `path` below the root; refuses what can never be a path in it."""
        if not isinstance(path, str):
            raise ToolError(f"path must be a string, got {type(path).__name__}")
        if "\x00" in path:
            raise ToolError(f"path {_short(path)!r} contains a NUL byte: give a plain file path")
        if len(path) > MAX_PATH_CHARS:
            raise ToolError(
                f"path {_short(path)!r} is {len(path):,} characters long: paths are at most "
                f"{MAX_PATH_CHARS:,}"
            )
        for name in path.split("/"):
            if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
                raise ToolError(
                    f"path {_short(path)!r} has a name of {len(name):,} characters: a file or "
                    f"folder name is at most {MAX_NAME_BYTES} bytes"
                )
        given = path or "."
        if given.startswith("~"):
            given = "./" + given  # a file named '~...' in the root, never the home folder
        if not given.startswith("/"):
            return given.split("/")
        parts = [p for p in given.split("/") if p]
        root_parts = [p for p in str(self.root).split("/") if p]
        if parts[: len(root_parts)] == root_parts:
            return parts[len(root_parts) :]
        for cut in range(len(parts), 0, -1):  # the root reached through a host symlink
            if os.path.realpath("/" + "/".join(parts[:cut])) == str(self.root):
                return parts[cut:]
        log.info("path_refused", path=path, reason="outside_root")
        raise self._refusal(path, FenceError("outside"))

    def _refusal(self, path: str, exc: FenceError) -> ToolError:
        shown = _short(path)
        log.info("path_refused", path=shown, reason=exc.kind, at=exc.at)
        if exc.kind == "outside":
            return ToolError(
                f"path {shown!r} is outside the workspace root: "
                "use a path relative to the root (no '..' above it)"
            )
        if exc.kind == "symlink":
            target = f" (it points to {exc.target!r})" if exc.target else ""
            return ToolError(
                f"path {shown!r} leads outside the workspace root through the symlink "
                f"{exc.at!r}{target}: symlinks that leave the root are not followed; use a "
                "path to a file inside the root"
            )
        if exc.kind == "loop":
            return ToolError(
                f"path {shown!r} goes round a symlink loop at {exc.at!r}: use a real file's path"
            )
        if exc.kind == "notdir":
            return ToolError(
                f"path {shown!r} goes through {exc.at!r}, which is a file, not a folder: "
                "a file is in the way"
            )
        return self._missing(path)

    def _missing(self, path: str) -> ToolError:
        return ToolError(
            f"path {_short(path)!r} does not exist in this repository: "
            "check the name, or list files with run_command('ls') or grep",
            ErrorKind.NOT_FOUND,
        )


def _special(rel: str, st: os.stat_result) -> ToolError:
    return ToolError(
        f"{rel!r} is a {kind_of(st)}, not a regular file: the file tools read and write "
        "regular files only (reading a pipe or device could block or never end)"
    )


def _short(text: str, limit: int = 200) -> str:
    """A path for a message: long ones are cut, so a 6,000-character path stays one line."""
    return text if len(text) <= limit else f"{text[:limit]}...[{len(text):,} characters]"
