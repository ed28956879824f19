"""Shared fixtures: real temporary repositories, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Training runs in tests build their frozen-layer states every time (a state stored by one
    test would skip the build another test watches); the store's own test turns it on."""
    os.environ.setdefault("PUNIE_FROZEN_STATES_DIR", "off")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small real repository on disk."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text('"""A tiny package."""\n')
    (root / "pkg" / "shapes.py").write_text(
        "class Shape:\n    def area(self) -> float:\n        raise NotImplementedError\n\n\n"
        "class Square(Shape):\n    def __init__(self, side: float) -> None:\n"
        "        self.side = side\n\n    def area(self) -> float:\n        return self.side**2\n"
    )
    (root / "README.md").write_text("# repo\n\nSquares and shapes.\n")
    return root
