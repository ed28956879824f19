"""The built wheel carries what Punie needs at run time: installed outside the checkout, it
runs `punie eval --help`, finds the packaged eval suite and public rows, and runs the demo's
data stages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH; .ci/run installs it")
    return uv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment, outside the checkout, with the built wheel installed."""
    uv = _uv()
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(dist), str(PROJECT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = dist.glob("punie-*.whl")
    # The locked versions of the dependencies (from uv's cache), then the wheel itself.
    requirements = root / "requirements.txt"
    subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
         "--output-file", str(requirements)],
        check=True, capture_output=True, cwd=PROJECT,
    )  # fmt: skip
    venv = root / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True,
                   capture_output=True)  # fmt: skip
    python = venv / "bin" / "python"
    for args in (["-r", str(requirements)], [str(wheel)]):
        subprocess.run(
            [uv, "pip", "install", "--python", str(python), "--no-deps", *args],
            check=True, capture_output=True,
        )  # fmt: skip
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_installed_wheel_runs_the_cli(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, "punie", "eval", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--tasks" in done.stdout


@pytest.mark.slow
def test_installed_wheel_ships_the_suite_and_public_rows(installed: Path, tmp_path: Path) -> None:
    script = (
        "import json, punie\n"
        "from punie.evaluation.suite import shipped_suites, load_suite\n"
        "from punie.data.convert.sources import shipped_public_rows\n"
        "suites = shipped_suites()\n"
        "print(json.dumps({'package': punie.__file__,"
        " 'suites': [str(p) for p in suites],"
        " 'tasks': len(load_suite(suites)),"
        " 'rows': {k: str(v) for k, v in shipped_public_rows().items()}}))\n"
    )
    done = _run(installed, "python", "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    site = Path(found["package"]).parent
    assert str(PROJECT) not in found["package"], "imported the checkout, not the wheel"
    assert found["suites"] and all(Path(p).is_relative_to(site) for p in found["suites"])
    assert found["tasks"] > 0
    assert set(found["rows"]) >= {"glaive", "when2call", "hermes"}
    assert all(Path(p).is_relative_to(site) for p in found["rows"].values())


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_data_stages(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "demo"
    done = _run(installed, "punie", "demo", "--data-only", "--workdir", str(work), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    mixed = next(work.glob("mixed*/**/train.jsonl"), None) or next(work.rglob("train.jsonl"))
    assert sum(1 for line in mixed.read_text().splitlines() if line.strip()) > 50
