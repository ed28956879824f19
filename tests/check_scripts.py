"""Run a `*_check.py` script in a child process with the fast BLAS Punie chooses (in pytest's
own process MLX has the wheel's reference BLAS, ~30x slower) and read its JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_check_script(script: Path, *args: str, timeout: float) -> dict[str, Any]:
    """`python script args...` with Punie's child environment; the last stdout line is JSON."""
    from punie.mlx.blas import child_env, choose_blas

    done = subprocess.run(
        [sys.executable, str(script), *args],
        env=child_env(choose_blas()),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
