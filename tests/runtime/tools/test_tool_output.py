"""Output capping: head and tail kept around a visible notice, streamed or whole."""

from __future__ import annotations

import re

import pytest

from punie.runtime.tools import OutputCapper, cap_output


def _truncated_count(text: str) -> int:
    match = re.search(r"\[\.\.\. ([\d,]+) characters truncated \.\.\.\]", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def test_short_text_is_unchanged() -> None:
    assert cap_output("abc\n", 10) == "abc\n"
    assert cap_output("x" * 10, 10) == "x" * 10


def test_long_text_keeps_head_and_tail_and_counts_the_cut() -> None:
    text = "".join(f"line {i}\n" for i in range(100_000))
    capped = cap_output(text, 1000)
    assert capped.startswith("line 0\nline 1\n")
    assert capped.endswith("line 99999\n")
    assert len(capped) < 1100
    kept = capped.replace(re.search(r"\n\[\.\.\..*\.\.\.\]\n", capped).group(0), "\n")
    # what was kept plus what the notice says was cut is the whole text
    assert len(kept) + _truncated_count(capped) == len(text)
    # lines on both sides of the notice are whole
    assert re.search(r"line \d+\n\[\.\.\. [\d,]+ characters truncated \.\.\.\]\nline \d+\n", capped)


def test_notice_reads_like_the_agreed_format() -> None:
    capped = cap_output("x" * 10_000_000, 16_000)
    assert "[... 9,984,000 characters truncated ...]" in capped


@pytest.mark.parametrize("chunk", [1, 7, 4096, 70_000])
def test_streaming_gives_the_same_text_as_cap_output(chunk: int) -> None:
    text = "".join(f"{i:06d} some output\n" for i in range(20_000))
    for limit in (50, 1000, len(text), len(text) + 5):
        capper = OutputCapper(limit)
        for start in range(0, len(text), chunk):
            capper.feed(text[start : start + chunk])
        assert capper.text() == cap_output(text, limit)
        assert capper.truncated == (len(text) > limit)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        cap_output("abc", 0)
