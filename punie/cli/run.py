"""`punie run`: one question, one repository, one traced agent run."""

from __future__ import annotations

from punie.cli import app  # noqa: F401
