"""Resolving a path beneath a directory by file descriptor, never by path string.

Each component is looked up with `lstat`/`open(..., O_NOFOLLOW)` relative to the descriptor of
the folder before it, starting from a descriptor on the root. Symlinks are expanded here (a
link that leaves the root is refused), and `..` pops a folder this walk opened, so it can never
climb above the root. A folder swapped for a symlink between two steps makes the step fail and
retry, not follow it: there is no check-then-open race to win.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass

MAX_SYMLINKS = 40
"""Symlinks expanded in one walk before it counts as a loop (Linux's own limit)."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", 0)


class FenceError(Exception):
    """Why a walk stopped: `kind` is outside, symlink, missing, notdir or loop; `at` is the
    path (relative to the root) of the component that stopped it; `target` a link's target."""

    def __init__(self, kind: str, at: str = "", target: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.at = at
        self.target = target


@dataclass
class Walked:
    """Where a walk ended: `dir_fd` (owned by the caller: close it) is the folder holding
    `name`; `name` is None when the path is that folder itself. `st` is `name`'s lstat (None
    when it does not exist; never a symlink)."""

    dir_fd: int
    parts: tuple[str, ...]
    name: str | None
    st: os.stat_result | None
    rest: tuple[str, ...] = ()
    """With `stop_at_missing`: the components after a missing folder `name`."""

    @property
    def relative(self) -> str:
        """The real path relative to the root, '/'-separated ('.' for the root)."""
        parts = (*self.parts, self.name, *self.rest) if self.name else self.parts
        return "/".join(parts) or "."


def open_dir(path: str) -> int:
    """A descriptor on the folder `path` (the root), not following a final symlink."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | getattr(os, "O_PATH", 0))


def walk(
    root_fd: int,
    root: str,
    parts: list[str],
    *,
    create_dirs: bool = False,
    stop_at_missing: bool = False,
) -> Walked:
    """Resolve `parts` beneath `root_fd` (whose real path is `root`).

    With `create_dirs`, missing folders on the way are made (mode 0777 & ~umask); with
    `stop_at_missing`, the walk ends at the first missing folder (the rest in `rest`); the last
    component may always be missing. Raises FenceError.
    """
    stack: list[int] = [root_fd]
    names: list[str] = []
    pending = [p for p in reversed(parts) if p not in {"", "."}]
    links = 0
    last_link = ""
    try:
        while pending:
            part = pending.pop()
            if part in {"", "."}:
                continue
            if part == "..":
                if not names:
                    raise FenceError("symlink" if last_link else "outside", last_link)
                os.close(stack.pop())
                names.pop()
                continue
            here = "/".join((*names, part))
            is_last = not any(p not in {"", "."} for p in pending)
            try:
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if is_last:
                    return _result(stack, names, part, None)
                if stop_at_missing:
                    rest = tuple(p for p in reversed(pending) if p not in {"", "."})
                    return _result(stack, names, part, None, rest)
                if not create_dirs:
                    raise FenceError("missing", here) from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=stack[-1])
                pending.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    raise FenceError("loop", here)
                target = os.readlink(part, dir_fd=stack[-1])
                last_link = here
                if target.startswith("/"):
                    inside = _beneath(root, target)
                    if inside is None:
                        raise FenceError("symlink", here, target)
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                    pending.extend(reversed(inside))
                else:
                    pending.extend(p for p in reversed(target.split("/")) if p)
                continue
            if is_last:
                return _result(stack, names, part, st)
            if not stat.S_ISDIR(st.st_mode):
                raise FenceError("notdir", here)
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=stack[-1])
            except OSError as exc:  # swapped for a symlink or a file since the lstat: look again
                if exc.errno not in {errno.ELOOP, errno.ENOTDIR, errno.ENOENT}:
                    raise
                links += 1
                if links > MAX_SYMLINKS:
                    raise FenceError("loop", here) from exc
                pending.append(part)
                continue
            stack.append(fd)
            names.append(part)
        return _result(stack, names, None, None)
    except BaseException:
        for fd in stack[1:]:
            os.close(fd)
        raise


def _result(
    stack: list[int],
    names: list[str],
    name: str | None,
    st: os.stat_result | None,
    rest: tuple[str, ...] = (),
) -> Walked:
    """Keep the last folder's descriptor (a dup of the root's), close the others."""
    for fd in stack[1:-1]:
        os.close(fd)
    dir_fd = stack[-1] if len(stack) > 1 else os.dup(stack[0])
    return Walked(dir_fd, tuple(names), name, st, rest)


def _beneath(root: str, target: str) -> list[str] | None:
    """The components of the absolute `target` below `root`, or None when it is not below."""
    root_parts = [p for p in root.split("/") if p]
    target_parts = [p for p in target.split("/") if p]
    if target_parts[: len(root_parts)] != root_parts:
        return None
    return target_parts[len(root_parts) :]


def kind_of(st: os.stat_result) -> str:
    """A file type in words, for refusals."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISREG(mode):
        return "regular file"
    return "special file"
