"""Checks of CLI inputs before any work starts: one line naming the input that cannot work.

Input files must be regular, readable, non-empty and (for text formats) UTF-8 text; outputs
must be creatable where asked, and not a folder where a file is wanted.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import tempfile
from pathlib import Path

from punie.errors import ConfigError

_CHUNK = 1 << 20
TEXT_SUFFIXES = frozenset({".jsonl", ".json", ".yaml", ".yml", ".txt", ""})


def input_file(path: Path, flag: str, *, text: bool = True) -> Path:
    """`path` as an input file for `flag`; raises ConfigError naming it when it is missing, not
    a regular file (a folder, a FIFO, a device), unreadable, empty, or (with `text`) not
    UTF-8 text."""
    shown = f"{flag} {str(path)!r}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file; pass an existing file") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{shown} is a folder: pass a file")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{shown} is not a regular file (a FIFO or device?): pass a file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read it ({exc.strerror})") from None
    with handle:
        decoder = codecs.getincrementaldecoder("utf-8")()
        blank = True
        offset = 0
        while chunk := handle.read(_CHUNK):
            if not text:
                blank = False
                break
            try:
                piece = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"{shown} is not UTF-8 text (byte {offset + exc.start:,} is not): pass a "
                    "text file of the expected format"
                ) from None
            if "\x00" in piece:
                raise ConfigError(f"{shown} holds NUL bytes (binary data): pass a text file")
            blank = blank and not piece.strip()
            offset += len(chunk)
        if text:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise ConfigError(f"{shown} ends in the middle of a UTF-8 character") from None
    if blank:
        raise ConfigError(f"{shown} is empty: pass a file with content")
    return path


def output_file(path: Path, flag: str) -> Path:
    """`path` as a file to write for `flag`: not a folder or special file, and its folder can
    be made and written (probed, then left as it was)."""
    shown = f"{flag} {str(path)!r}"
    if path.is_dir():
        raise ConfigError(f"{shown} is a folder: pass the path of a file to write")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{shown} is not a regular file: pass the path of a file to write")
    _probe_folder(path.parent, shown)
    return path


def output_folder(path: Path, flag: str) -> Path:
    """`path` as a folder to write files in for `flag`."""
    shown = f"{flag} {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{shown} is a file: pass a folder to write into")
    _probe_folder(path, shown)
    return path


def _probe_folder(folder: Path, shown: str) -> None:
    """Make `folder` (and parents) and a probe file in it; undo what was made."""
    made: list[Path] = []
    current = folder if str(folder) else Path(".")
    missing: list[Path] = []
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    try:
        for part in reversed(missing):
            part.mkdir()
            made.append(part)
        fd, name = tempfile.mkstemp(prefix=".punie-probe-", dir=folder if str(folder) else ".")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise ConfigError(
            f"{shown} cannot be written ({exc.strerror or exc}): pass a path in a writable folder"
        ) from None
    finally:
        for part in reversed(made):
            with contextlib.suppress(OSError):
                part.rmdir()
