"""BLAS choice for MLX child processes: the order of preference, and a real preload in a child."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from punie.mlx.blas import (
    ACCELERATE_NAME,
    MKL_NAME,
    OPENBLAS_NAME,
    REFERENCE_NAME,
    BlasChoice,
    child_env,
    choose_blas,
    mkl_candidates,
    openblas_candidates,
)

MKL_WHEEL = next((p for p in mkl_candidates() if p.is_file()), None)
needs_mkl = pytest.mark.skipif(
    MKL_WHEEL is None or not sys.platform.startswith("linux"),
    reason="the mkl wheel is a Linux x86-64 dependency",
)

# Which shared objects are mapped, and which one provides `cblas_sgemm` in the global symbol scope
# (executable, then LD_PRELOAD libraries): the dynamic linker binds libmlx's BLAS calls there
# before it looks at the wheel's own bundled libblas.
PROBE = r"""
import ctypes, json
import mlx.core as mx
a = mx.ones((64, 64)); mx.eval(a @ a)
maps = [line.split() for line in open("/proc/self/maps")]
try:
    addr = ctypes.cast(ctypes.CDLL(None).cblas_sgemm, ctypes.c_void_p).value
except AttributeError:
    addr = None
owner = None
for parts in maps:
    lo, hi = (int(x, 16) for x in parts[0].split("-"))
    if addr is not None and lo <= addr < hi and len(parts) >= 6:
        owner = parts[5]
mapped = sorted({parts[5] for parts in maps if len(parts) >= 6 and parts[5].startswith("/")})
print(json.dumps({"owner": owner, "mapped": mapped}))
"""


def _probe(env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_mkl
def test_picks_mkl_wheel_when_no_system_openblas(tmp_path: Path) -> None:
    choice = choose_blas(openblas_paths=[tmp_path / "libopenblas.so.0"])
    assert choice.name == MKL_NAME
    assert choice.library == MKL_WHEEL
    assert choice.env["LD_PRELOAD"] == str(MKL_WHEEL)
    assert choice.is_fast


def test_prefers_system_openblas_over_mkl(tmp_path: Path) -> None:
    openblas = tmp_path / "openblas-pthread" / "libopenblas.so.0"
    openblas.parent.mkdir()
    openblas.write_bytes(b"\x7fELF")
    mkl = tmp_path / "libmkl_rt.so.3"
    mkl.write_bytes(b"\x7fELF")
    choice = choose_blas(
        openblas_paths=[tmp_path / "missing.so", openblas], mkl_paths=[mkl], platform="linux"
    )
    assert (choice.name, choice.library) == (OPENBLAS_NAME, openblas)
    assert choice.env == {"LD_PRELOAD": str(openblas)}


def test_reference_when_disabled_or_nothing_found(tmp_path: Path) -> None:
    disabled = choose_blas(enabled=False)
    assert (disabled.name, disabled.library, disabled.env) == (REFERENCE_NAME, None, {})
    assert not disabled.is_fast
    nothing = choose_blas(openblas_paths=[tmp_path / "a.so"], mkl_paths=[tmp_path / "b.so"])
    assert nothing.name == REFERENCE_NAME
    assert nothing.library is None


def test_macos_uses_accelerate_without_preload() -> None:
    choice = choose_blas(platform="darwin")
    assert choice.name == ACCELERATE_NAME
    assert choice.env == {}
    assert choice.is_fast


def test_debian_openblas_path_is_searched_first() -> None:
    first = openblas_candidates()[0]
    assert first.parts[-2:] == ("openblas-pthread", "libopenblas.so.0")
    assert first.parts[:3] == ("/", "usr", "lib")


def test_child_env_merges_preload_and_keeps_user_settings(tmp_path: Path) -> None:
    lib = tmp_path / "libmkl_rt.so.3"
    lib.write_bytes(b"\x7fELF")
    choice = choose_blas(openblas_paths=[], mkl_paths=[lib], platform="linux")
    assert choice.env == {"LD_PRELOAD": str(lib)}
    base = {"PATH": "/bin", "LD_PRELOAD": "/opt/other.so", "MKL_NUM_THREADS": "1"}
    env = child_env(choice, base)
    assert env["LD_PRELOAD"] == f"{lib} /opt/other.so"
    threads = BlasChoice(choice.name, lib, {**choice.env, "MKL_NUM_THREADS": "2"})
    assert child_env(threads, base)["MKL_NUM_THREADS"] == "1"  # the user's setting wins
    assert child_env(threads, {"PATH": "/bin"})["MKL_NUM_THREADS"] == "2"
    assert env["PATH"] == "/bin"
    assert base["LD_PRELOAD"] == "/opt/other.so"
    # Applying it twice does not stack the library.
    assert child_env(choice, env)["LD_PRELOAD"] == env["LD_PRELOAD"]
    assert "LD_PRELOAD" not in child_env(choose_blas(enabled=False), {"PATH": "/bin"})


@needs_mkl
def test_child_process_really_runs_the_preloaded_blas() -> None:
    fast = choose_blas(openblas_paths=[])
    probe = _probe(child_env(fast))
    assert probe["owner"] is not None
    assert Path(probe["owner"]).resolve() == fast.library.resolve()
    assert str(fast.library) in probe["mapped"]

    stock = _probe(child_env(choose_blas(enabled=False)))
    assert stock["owner"] is None  # nothing global: libmlx falls back to its bundled libblas
    assert not [p for p in stock["mapped"] if "mkl" in p]
    assert [p for p in stock["mapped"] if Path(p).name.startswith("libblas")]
