"""`--compare` target specs and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from punie.errors import ConfigError
from punie.evaluation import EvalTarget
from punie.evaluation.evaluate import parse_target


def test_compare_specs() -> None:
    assert parse_target("tuned=models/smol:adapters/run1") == EvalTarget(
        "tuned", model="models/smol", adapter=Path("adapters/run1")
    )
    assert parse_target("base=models/smol") == EvalTarget("base", model="models/smol")
    assert parse_target("tuned=embedded:adapters/a") == EvalTarget(
        "tuned", model=None, adapter=Path("adapters/a")
    )
    assert parse_target("remote=http://127.0.0.1:8080/v1") == EvalTarget(
        "remote", base_url="http://127.0.0.1:8080/v1"
    )
    with pytest.raises(ConfigError, match="expected LABEL=MODEL"):
        parse_target("models/smol")


def test_cli_bad_compare_is_one_red_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "punie", "eval", "--base-url", "http://127.0.0.1:9/v1",
         "--model", "qwen2.5-coder", "--compare", "nolabel", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--compare 'nolabel': expected LABEL=MODEL[:ADAPTER] or LABEL=URL" in done.stderr
