"""Sandbox fixtures: the real bubblewrap, required under CI (a missing one fails, never skips)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_helpers import require_sandbox

from punie.runtime.tools import Sandbox


@pytest.fixture
def sandbox() -> Sandbox:
    return require_sandbox()


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A folder outside the repository and outside /tmp (which the sandbox replaces)."""
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    with tempfile.TemporaryDirectory(prefix="punie-sandbox-", dir=base) as name:
        yield Path(name)
