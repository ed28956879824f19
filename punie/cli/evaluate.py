"""`punie eval`, `punie demo` and `punie experiment`: measure the loop and run it whole."""

from __future__ import annotations

from punie.cli import app  # noqa: F401
