"""`punie doctor --json` in a real child process, on a fresh user cache."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def _doctor(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if k not in ("PUNIE_BLAS", "LD_PRELOAD")}
    child |= {"XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "punie", "doctor", *args],
        env=child | env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_doctor_json_names_the_chosen_blas(tmp_path: Path) -> None:
    first = _doctor(tmp_path, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    blas = report["blas"]
    keys = [c["key"] for c in blas["candidates"]]
    assert blas["chosen"] in keys
    chosen = next(c for c in blas["candidates"] if c["key"] == blas["chosen"])
    assert chosen["ok"]
    assert chosen["gflops"] > 0
    assert blas["name"] == chosen["name"]
    assert not blas["cached"]
    assert keys[-1] == "reference"
    if sys.platform.startswith("linux") and platform.machine() == "x86_64":
        assert "openblas-wheel" in keys
        assert blas["chosen"] != "reference"
    assert report["machine"]["cpus"] >= 1
    assert report["machine"]["cpu"]
    model = report["model"]
    assert model["installed"]
    assert model["folder"].startswith(str(tmp_path / "cache"))
    assert model["prepared"] is False  # looked at, not prepared
    assert report["sandbox"]["kind"] in ("bubblewrap", "none")
    assert report["run_adapter"] == {"adapter": None}

    again = json.loads(_doctor(tmp_path, "--json").stdout)
    assert again["blas"]["cached"]
    assert again["blas"]["chosen"] == blas["chosen"]


def test_doctor_reports_a_bad_override_in_one_line(tmp_path: Path) -> None:
    done = _doctor(tmp_path, PUNIE_BLAS="fastest")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: PUNIE_BLAS=fastest: expected auto, system-openblas")


def test_doctor_suggests_mkl_only_on_intel_without_it() -> None:
    from punie.cli.doctor import MKL_HINT, blas_hint

    present = {"candidates": [{"key": "openblas-wheel"}, {"key": "reference"}]}
    with_mkl = {"candidates": [{"key": "mkl"}, {"key": "openblas-wheel"}]}
    assert blas_hint("GenuineIntel", present) == MKL_HINT
    assert blas_hint("AuthenticAMD", present) is None
    assert blas_hint("GenuineIntel", with_mkl) is None
    assert blas_hint("GenuineIntel", {**present, "override": "reference"}) is None
