"""`read_file` and `write_file`: text files inside the workspace, read in line ranges with a
byte cap and written atomically, both through descriptors the fence opened."""

from __future__ import annotations

import codecs
import contextlib
import os
import secrets
import stat

import structlog

from punie.errors import ToolError
from punie.records.tool_result import ErrorKind, ResultKind, ToolResult
from punie.runtime.tools.output import DEFAULT_OUTPUT_LIMIT
from punie.runtime.tools.workspace import Workspace

log = structlog.get_logger(__name__)

_SNIFF_BYTES = 8192
_PIECE_BYTES = 65_536
SCAN_LIMIT_BYTES = 64 * 1024 * 1024
"""How far `read_file` reads into a file at most (to count lines or reach start_line)."""
MAX_WRITE_BYTES = 16 * 1024 * 1024
_NEW_FILE_MODE = 0o644


def read_file(
    ws: Workspace,
    path: str,
    start_line: int | None = None,
    end_line: int | None = None,
    *,
    max_chars: int = DEFAULT_OUTPUT_LIMIT,
) -> ToolResult:
    """The text of a file, or of lines `start_line`..`end_line` (1-based, inclusive).

    Reads in bounded pieces, so memory stays small whatever the file (a 2 GB line included);
    past `max_chars` it stops at a line boundary and says which line to continue from, and it
    reads at most `SCAN_LIMIT_BYTES` in all. Refuses directories, special and binary files.
    """
    if start_line is not None and start_line < 1:
        raise ToolError(f"start_line must be 1 or more (lines count from 1), got {start_line}")
    if end_line is not None and end_line < (start_line or 1):
        raise ToolError(
            f"end_line {end_line} is before start_line {start_line or 1}: "
            "give end_line >= start_line"
        )
    with ws.open_read(path) as (fd, rel, _):
        os.set_blocking(fd, True)
        with os.fdopen(os.dup(fd), "rb", buffering=_PIECE_BYTES) as handle:
            if b"\x00" in handle.read(_SNIFF_BYTES):
                raise ToolError(
                    f"{rel!r} looks like a binary file (it holds NUL bytes): read_file shows "
                    "text files only; inspect it with run_command (e.g. 'file' or 'xxd | head')"
                )
            handle.seek(0)
            scan = _scan(handle, start_line or 1, end_line, max_chars)
    first, last = start_line or 1, end_line
    if scan.lines == 0:
        return ToolResult(f"({rel} is empty)", ResultKind.EMPTY_FILE, path=rel)
    if first > scan.lines:
        if scan.stopped:
            raise ToolError(
                f"start_line {first} is past the first {scan.lines:,} lines of {rel!r} that "
                f"read_file scans ({SCAN_LIMIT_BYTES // 2**20} MB): use run_command "
                f"(e.g. \"sed -n '{first},{first + 50}p' {rel}\")"
            )
        raise ToolError(f"{rel!r} has {scan.lines} lines; start_line {first} is past the end")
    log.info(
        "file_read", path=rel, start_line=first, end_line=last, lines=scan.lines, cut_at=scan.cut_at
    )
    text = "".join(scan.kept)
    if scan.cut_at is None:
        return ToolResult(text, ResultKind.FILE_TEXT, path=rel, truncated=False)
    shown = text.removesuffix("\n")  # the notice starts on a fresh line anyway
    if scan.long_line:
        more = "+" if scan.stopped else ""
        return _truncated(
            f"{shown}\n[... truncated: line {scan.cut_at} of {rel} has {scan.long_line:,}{more} "
            f"characters; showed the first {max_chars:,}. See the rest with run_command, e.g. "
            f"\"sed -n '{scan.cut_at}p' {rel} | cut -c{max_chars + 1}-{2 * max_chars}\" ...]\n",
            rel,
        )
    total = f"more than {scan.lines:,}" if scan.stopped else f"{scan.lines:,}"
    return _truncated(
        f"{shown}\n[... truncated: showed lines {first}-{scan.cut_at - 1} of {rel} "
        f"({scan.kept_chars:,} characters), which has {total} lines; "
        f"read on with start_line={scan.cut_at} ...]\n",
        rel,
    )


def _truncated(text: str, rel: str) -> ToolResult:
    return ToolResult(text, ResultKind.FILE_TEXT, path=rel, truncated=True)


class _Scan:
    """What one bounded pass over a file kept and counted."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.kept_chars = 0
        self.cut_at: int | None = None  # first line not shown because of max_chars
        self.long_line = 0  # length of a first line too long to show whole
        self.lines = 0
        self.stopped = False  # the scan limit was reached before the end of the file


def _scan(handle, first: int, last: int | None, max_chars: int) -> _Scan:
    """Read `handle` piece by piece (never a whole line at once), keeping lines first..last."""
    scan = _Scan()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    number = 1
    current: list[str] = []  # pieces of the line being kept
    current_chars = 0
    counting_long = False
    scanned = 0
    partial = False  # bytes of line `number` were read
    while True:
        piece = handle.readline(_PIECE_BYTES)
        if not piece:
            break
        scanned += len(piece)
        partial = True
        text = decoder.decode(piece)
        keep = number >= first and (last is None or number <= last) and scan.cut_at is None
        if keep:
            current.append(text)
            current_chars += len(text)
            if scan.kept_chars + current_chars > max_chars:
                scan.cut_at = number
                if not scan.kept:  # one giant line: show its start rather than nothing
                    scan.kept.append("".join(current)[:max_chars])
                    scan.kept_chars = max_chars
                    scan.long_line = current_chars
                    counting_long = True
                current, current_chars = [], 0
        elif counting_long:
            scan.long_line += len(text)
        if piece.endswith(b"\n"):
            if current:
                scan.kept.append("".join(current))
                scan.kept_chars += current_chars
                current, current_chars = [], 0
            scan.lines = number
            number += 1
            partial = False
            counting_long = False
            if last is not None and number > last and scan.cut_at is None:
                break  # the range is read; the total is not needed
        if scanned >= SCAN_LIMIT_BYTES:
            scan.stopped = True
            break
    if partial:
        if current:
            scan.kept.append("".join(current))
            scan.kept_chars += current_chars
        scan.lines = number
    return scan


def write_file(ws: Workspace, path: str, content: str) -> ToolResult:
    """Write `content` to `path` atomically (a temporary file in the same directory, then a
    rename), creating missing parent directories inside the root. Refuses control paths
    (`.git`, `.venv`, ...) and anything but a regular file at `path`."""
    if not isinstance(content, str):
        raise ToolError(f"content must be text, got {type(content).__name__}")
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"content for {path[:200]!r} is not valid Unicode text ({exc.reason} at character "
            f"{exc.start}): send plain UTF-8 text"
        ) from None
    if len(data) > MAX_WRITE_BYTES:
        raise ToolError(
            f"content for {path[:200]!r} is {len(data):,} bytes: write_file writes at most "
            f"{MAX_WRITE_BYTES:,}"
        )
    with ws.walk(path, stop_at_missing=True) as probe:  # refuse before making any folder
        ws.check_writable(probe.relative, path)
    with ws.walk(path, create_dirs=True) as walked:
        rel = walked.relative
        ws.check_writable(rel, path)
        if walked.name is None or (walked.st is not None and stat.S_ISDIR(walked.st.st_mode)):
            raise ToolError(
                f"{rel!r} is a directory: give the path of a file to write", ErrorKind.IS_DIRECTORY
            )
        if walked.st is not None and not stat.S_ISREG(walked.st.st_mode):
            raise ToolError(f"{rel!r} is a special file (FIFO, device or socket): not written")
        mode = (walked.st.st_mode & 0o777) if walked.st is not None else _NEW_FILE_MODE
        _replace(walked.dir_fd, walked.name, data, mode, rel)
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    log.info("file_written", path=rel, lines=lines, bytes=len(data))
    noun = "line" if lines == 1 else "lines"
    return ToolResult(f"wrote {lines} {noun} ({len(data):,} bytes) to {rel}", ResultKind.WRITTEN)


def _replace(dir_fd: int, name: str, data: bytes, mode: int, rel: str) -> None:
    """Write a temporary file beside `name` in `dir_fd` and rename it over `name`.

    The mode keeps only permission bits (never set-id bits).
    """
    temp = f".{name[:200]}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise ToolError(f"could not write {rel!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
        if isinstance(exc, OSError):
            raise ToolError(f"could not write {rel!r}: {exc.strerror or exc}") from None
        raise
