"""Degenerate-output and loop detection on the shapes real small models produce."""

from __future__ import annotations

import pytest

from punie.records.trace import RunStatus
from punie.runtime.guards import GuardTripped, LoopDetector, find_degenerate_repeat

PARAGRAPH = (
    "The `Item` class is a class that is used to create a collection of objects, "
    "which is a fundamental concept in object-oriented programming.\n\n"
)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("Paris." + "!<|im_end|>" * 30, "!<|im_end|>"),
        ("Paris" + "!" * 300, "!"),
        ("the " * 40, "the "),
        (PARAGRAPH * 6 + "The `Item` class is", PARAGRAPH),
    ],
)
def test_repeated_units_are_degenerate(text: str, unit: str) -> None:
    found = find_degenerate_repeat(text)
    assert found is not None
    # the unit found is the repeated one, up to where in the cycle it starts
    assert sorted(found) == sorted(unit)


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        "Square is defined in pkg/shapes.py at line 6; it inherits from Shape.",
        "def area(self):\n    return self.side ** 2\n\n\n"
        "def perimeter(self):\n    return 4 * self.side\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n",
        PARAGRAPH * 2,
    ],
)
def test_ordinary_answers_are_not_degenerate(text: str) -> None:
    assert find_degenerate_repeat(text) is None


def test_loop_detector_trips_on_the_nth_identical_call_in_a_row() -> None:
    loop = LoopDetector(repeat_limit=3)
    loop.observe("grep", {"pattern": "x", "path": "."})
    loop.observe("grep", {"path": ".", "pattern": "x"})  # same arguments, other order
    loop.observe("grep", {"pattern": "y"})  # a different call resets the count
    loop.observe("grep", '{"pattern": "y"}')
    with pytest.raises(GuardTripped) as tripped:
        loop.observe("grep", {"pattern": "y"})
    assert tripped.value.status is RunStatus.LOOP_DETECTED
    assert "grep" in tripped.value.reason
