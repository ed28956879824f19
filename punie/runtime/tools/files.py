"""`read_file` and `write_file`: text files inside the workspace, read in line ranges and
written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile

import structlog

from punie.errors import ToolError
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT
from punie.runtime.tools.workspace import Workspace

log = structlog.get_logger(__name__)

_SNIFF_BYTES = 8192
_NEW_FILE_MODE = 0o644


def read_file(
    ws: Workspace,
    path: str,
    start_line: int | None = None,
    end_line: int | None = None,
    *,
    max_chars: int = DEFAULT_OUTPUT_LIMIT,
) -> str:
    """The text of a file, or of lines `start_line`..`end_line` (1-based, inclusive).

    Reads line by line, so a huge file is never loaded whole; past `max_chars` it stops at a
    line boundary and says which line to continue from. Refuses directories and binary files.
    """
    target = ws.resolve(path)
    rel = ws.relative(target)
    if target.is_dir():
        raise ToolError(
            f"{rel!r} is a directory, not a file: list it with run_command('ls {rel}') "
            "or search it with grep"
        )
    if start_line is not None and start_line < 1:
        raise ToolError(f"start_line must be 1 or more (lines count from 1), got {start_line}")
    if end_line is not None and end_line < (start_line or 1):
        raise ToolError(
            f"end_line {end_line} is before start_line {start_line or 1}: "
            "give end_line >= start_line"
        )
    with target.open("rb") as handle:
        if b"\x00" in handle.read(_SNIFF_BYTES):
            raise ToolError(
                f"{rel!r} looks like a binary file (it holds NUL bytes): read_file shows text "
                "files only; inspect it with run_command (e.g. 'file' or 'xxd | head')"
            )
    first = start_line or 1
    last = end_line
    kept: list[str] = []
    kept_chars = 0
    cut_at: int | None = None  # first line not shown because of max_chars
    long_line = 0  # length of a first line too long to show whole
    total_lines = 0
    with target.open(encoding="utf-8", errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            total_lines = number
            if number < first or (last is not None and number > last) or cut_at is not None:
                continue
            if kept_chars + len(line) > max_chars:
                cut_at = number
                if not kept:  # one giant line: show its start rather than nothing
                    kept.append(line[:max_chars])
                    kept_chars = max_chars
                    long_line = len(line)
                continue
            kept.append(line)
            kept_chars += len(line)
    if total_lines == 0:
        return f"({rel} is empty)"
    if first > total_lines:
        raise ToolError(f"{rel!r} has {total_lines} lines; start_line {first} is past the end")
    log.info(
        "file_read", path=rel, start_line=first, end_line=last, lines=total_lines, cut_at=cut_at
    )
    text = "".join(kept)
    if cut_at is None:
        return text
    shown = text.removesuffix("\n")  # the notice starts on a fresh line anyway
    if long_line:
        return (
            f"{shown}\n[... truncated: line {cut_at} of {rel} has {long_line:,} characters; "
            f"showed the first {max_chars:,}. See the rest with run_command, e.g. "
            f"\"sed -n '{cut_at}p' {rel} | cut -c{max_chars + 1}-{2 * max_chars}\" ...]\n"
        )
    return (
        f"{shown}\n[... truncated: showed lines {first}-{cut_at - 1} of {rel} "
        f"({kept_chars:,} characters), which has {total_lines:,} lines; "
        f"read on with start_line={cut_at} ...]\n"
    )


def write_file(ws: Workspace, path: str, content: str) -> str:
    """Write `content` to `path` atomically (a temporary file in the same directory, then
    `os.replace`), creating missing parent directories inside the root."""
    target = ws.resolve(path, must_exist=False)
    rel = ws.relative(target)
    if target.is_dir():
        raise ToolError(f"{rel!r} is a directory: give the path of a file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ToolError(
            f"cannot create the folder for {rel!r}: a file is in the way ({exc})"
        ) from exc
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"content for {rel!r} is not valid Unicode text ({exc.reason} at character "
            f"{exc.start}): send plain UTF-8 text"
        ) from exc
    mode = target.stat().st_mode & 0o7777 if target.exists() else _NEW_FILE_MODE
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        if isinstance(exc, OSError):
            raise ToolError(f"could not write {rel!r}: {exc}") from exc
        raise
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    log.info("file_written", path=rel, lines=lines, bytes=len(data))
    noun = "line" if lines == 1 else "lines"
    return f"wrote {lines} {noun} ({len(data):,} bytes) to {rel}"
