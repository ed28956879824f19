"""Capping tool output: keep the head and the tail, and say visibly how much was cut.

The same notice is used for live command output (fed chunk by chunk, never held whole) and for
text already in memory, so the model and the harvester see one truncation format.
"""

from __future__ import annotations

DEFAULT_OUTPUT_LIMIT: int = 16_000
"""Characters of tool output the model sees before the middle is cut."""

_SNAP_FRACTION = 0.2  # cut at a line break when one lies this close to the cut point


def _split(limit: int) -> tuple[int, int]:
    """How many characters of head and of tail a capped text keeps."""
    tail = limit // 3
    return limit - tail, tail


def _notice(count: int) -> str:
    return f"\n[... {count:,} characters truncated ...]\n"


def _compose(head: str, tail: str, total: int) -> str:
    """Join a kept head and tail of a text of `total` characters around the notice.

    The head is cut back to its last line break and the tail forward past its first one when
    that loses little, so the model sees whole lines on both sides of the notice.
    """
    newline = head.rfind("\n")
    if newline >= 0 and len(head) - newline <= max(1, int(len(head) * _SNAP_FRACTION)):
        head = head[: newline + 1]
    newline = tail.find("\n")
    if 0 <= newline < max(1, int(len(tail) * _SNAP_FRACTION)):
        tail = tail[newline + 1 :]
    count = total - len(head) - len(tail)
    shown = head.removesuffix("\n")  # the notice starts on a fresh line anyway
    return f"{shown}{_notice(count)}{tail}"


def cap_output(text: str, limit: int = DEFAULT_OUTPUT_LIMIT) -> str:
    """Return `text` unchanged if it fits in `limit` characters, else its head and tail
    around a notice such as ``[... 9,987,000 characters truncated ...]``."""
    if limit < 1:
        raise ValueError(f"output limit must be at least 1 character, got {limit}")
    if len(text) <= limit:
        return text
    head, tail = _split(limit)
    return _compose(text[:head], text[len(text) - tail :] if tail else "", len(text))


class OutputCapper:
    """Accumulates streamed text while keeping at most about `limit` characters in memory.

    ``OutputCapper(limit)`` fed the pieces of a text gives the same ``text()`` as
    ``cap_output(whole_text, limit)``.
    """

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"output limit must be at least 1 character, got {limit}")
        self.limit = limit
        self._head_size, self._tail_size = _split(limit)
        self._buffer: list[str] = []  # the whole text, while it still fits
        self._buffered = 0
        self._head: str | None = None  # set once the text no longer fits
        self._tail = ""
        self.total = 0

    @property
    def truncated(self) -> bool:
        """Whether the text fed so far is longer than the limit."""
        return self.total > self.limit

    def feed(self, chunk: str) -> None:
        """Add the next piece of the text."""
        if not chunk:
            return
        self.total += len(chunk)
        if self._head is None:
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            if self._buffered <= self.limit:
                return
            whole = "".join(self._buffer)
            self._buffer = []
            self._head = whole[: self._head_size]
            self._tail = whole[self._head_size :]
        else:
            self._tail += chunk
        # Trim lazily (at twice the size) so a stream of small chunks costs linear time.
        if len(self._tail) > 2 * self._tail_size + 65_536:
            self._tail = self._tail[len(self._tail) - self._tail_size :]

    def text(self) -> str:
        """The text fed so far, capped as `cap_output` would cap it."""
        if self._head is None:
            return "".join(self._buffer)
        tail = self._tail[len(self._tail) - self._tail_size :] if self._tail_size else ""
        return _compose(self._head, tail, self.total)
