"""The BLAS for MLX child processes: chosen by measuring the real candidates present (plus fake
ones), refused when wrong or crashing, cached per machine, overridable, really preloaded."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from blas_helpers import SIGILL_SGEMM, WRONG_SGEMM, build_library

from punie.errors import ConfigError
from punie.mlx.blas import (
    ACCELERATE_NAME,
    REFERENCE_NAME,
    BlasChoice,
    blas_override,
    blas_verdict,
    child_env,
    choose_blas,
    openblas_candidates,
)
from punie.mlx.blas_candidates import openblas_wheel_libraries
from punie.mlx.blas_probe import probe

X86_LINUX = sys.platform.startswith("linux") and platform.machine() == "x86_64"

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


@pytest.fixture(autouse=True)
def _no_user_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUNIE_BLAS", raising=False)


@pytest.fixture(scope="module")
def wrong_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake system OpenBLAS folder whose library computes a wrong matmul."""
    folder = tmp_path_factory.mktemp("fake-usr-lib") / "openblas-pthread"
    return build_library(WRONG_SGEMM, folder, "libopenblas.so.0")


@pytest.fixture(scope="module")
def several(tmp_path_factory: pytest.TempPathFactory, wrong_lib: Path) -> dict:
    """One real measurement of a machine with several candidates: the fake (wrong) system
    OpenBLAS and every real one present (the wheel's OpenBLAS, MKL where installed, reference)."""
    cache = tmp_path_factory.mktemp("cache")
    verdict = blas_verdict(cache_dir=cache, openblas_paths=[wrong_lib])
    return {"cache": cache, "verdict": verdict}


def test_choice_on_a_machine_with_several_candidates(several: dict, wrong_lib: Path) -> None:
    verdict = several["verdict"]
    by_key = {m.key: m for m in verdict.measurements}
    assert not verdict.cached
    assert list(by_key)[-1] == "reference"
    fake = by_key["system-openblas"]
    assert fake.library == str(wrong_lib)
    assert not fake.ok
    assert fake.reason.startswith("wrong matmul (max relative error")
    verified = [m for m in verdict.measurements if m.ok]
    assert verdict.chosen == max(verified, key=lambda m: m.gflops)
    assert all(m.gflops > 0 and m.max_error < 1e-3 for m in verified)
    assert by_key["reference"].ok
    if X86_LINUX:  # ngsolve-openblas is a dependency there: a fast BLAS without root
        wheel = by_key["openblas-wheel"]
        assert wheel.ok, wheel.reason
        assert "DYNAMIC_ARCH" in wheel.kernel
        assert any(Path(p).name.startswith("libopenblas") for p in wheel.mapped)
        assert verdict.chosen.key != "reference"
        assert verdict.chosen.gflops > 3 * by_key["reference"].gflops


def test_the_chosen_library_is_what_a_child_runs(several: dict, wrong_lib: Path) -> None:
    choice = choose_blas(cache_dir=several["cache"], openblas_paths=[wrong_lib])
    assert choice.key == several["verdict"].chosen.key
    assert choice.gflops == several["verdict"].chosen.gflops
    if choice.library is None:
        assert not X86_LINUX
        return
    assert choice.env == {"LD_PRELOAD": str(choice.library)}
    assert choice.is_fast
    seen = _probe(child_env(choice))
    assert seen["owner"] is not None
    assert Path(seen["owner"]).resolve() == choice.library.resolve()

    stock = _probe(child_env(choose_blas(enabled=False)))
    assert stock["owner"] is None  # nothing global: libmlx falls back to its bundled libblas
    assert not [p for p in stock["mapped"] if "mkl" in p or "openblas" in Path(p).name]
    assert [p for p in stock["mapped"] if Path(p).name.startswith("libblas")]


def test_a_crashing_or_unloadable_library_is_refused(tmp_path: Path) -> None:
    sigill = build_library(SIGILL_SGEMM, tmp_path, "libsigill.so")
    crashed = probe("custom", "sigill", sigill, {**os.environ, "LD_PRELOAD": str(sigill)})
    assert (crashed.ok, crashed.reason) == (False, "crashed (SIGILL)")

    garbage = tmp_path / "libopenblas.so.0"
    garbage.write_bytes(b"\x7fELF not really")
    unloadable = probe("custom", "garbage", garbage, {**os.environ, "LD_PRELOAD": str(garbage)})
    assert not unloadable.ok
    assert unloadable.reason.startswith("not loaded: ")
    assert "ld.so" in unloadable.reason


def test_cache_is_reused_and_invalidated(tmp_path: Path, wrong_lib: Path) -> None:
    only_reference = {"openblas_paths": [], "wheel_paths": [], "mkl_paths": []}
    first = blas_verdict(cache_dir=tmp_path, cpu="CPU A", **only_reference)
    cache_file = tmp_path / "blas" / "verdict.json"
    written = cache_file.stat().st_mtime_ns
    assert not first.cached
    assert [m.key for m in first.measurements] == ["reference"]

    again = blas_verdict(cache_dir=tmp_path, cpu="CPU A", **only_reference)
    assert again.cached
    assert again.chosen == first.chosen
    assert cache_file.stat().st_mtime_ns == written

    other_cpu = blas_verdict(cache_dir=tmp_path, cpu="CPU B", **only_reference)
    assert not other_cpu.cached
    assert json.loads(cache_file.read_text())["machine"]["cpu"] == "CPU B"

    with_openblas = {**only_reference, "openblas_paths": [wrong_lib]}
    new_library = blas_verdict(cache_dir=tmp_path, cpu="CPU B", **with_openblas)
    assert not new_library.cached
    assert {m.key for m in new_library.measurements} == {"system-openblas", "reference"}
    assert blas_verdict(cache_dir=tmp_path, cpu="CPU B", **with_openblas).cached

    remeasured = blas_verdict(cache_dir=tmp_path, cpu="CPU B", remeasure=True, **with_openblas)
    assert not remeasured.cached


def test_override_is_read_in_one_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert blas_override({}) is None
    assert blas_override({"PUNIE_BLAS": "auto"}) is None
    assert blas_override({"PUNIE_BLAS": "mkl"}) == "mkl"
    library = tmp_path / "libblas.so"
    library.write_bytes(b"\x7fELF")
    assert blas_override({"PUNIE_BLAS": str(library)}) == str(library)
    with pytest.raises(ConfigError, match=r"^PUNIE_BLAS=fast: expected auto, system-openblas"):
        blas_override({"PUNIE_BLAS": "fast"})
    with pytest.raises(ConfigError, match="no such library file"):
        blas_override({"PUNIE_BLAS": str(tmp_path / "missing.so")})

    monkeypatch.setenv("PUNIE_BLAS", "reference")
    # No measurement at all: nothing is written to the cache folder.
    assert choose_blas(cache_dir=tmp_path / "cache").name == REFERENCE_NAME
    assert not (tmp_path / "cache").exists()


def test_override_names_an_absent_or_wrong_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wrong_lib: Path
) -> None:
    none = {"openblas_paths": [], "wheel_paths": [], "mkl_paths": []}
    monkeypatch.setenv("PUNIE_BLAS", "mkl")
    with pytest.raises(ConfigError, match=r"^PUNIE_BLAS=mkl: no mkl \(PyPI wheel\) on this"):
        choose_blas(cache_dir=tmp_path, **none)
    monkeypatch.setenv("PUNIE_BLAS", str(wrong_lib))
    with pytest.raises(ConfigError, match=r"refused: wrong matmul"):
        choose_blas(cache_dir=tmp_path, **none)


@pytest.mark.skipif(not X86_LINUX, reason="the ngsolve-openblas wheel is Linux x86-64 only")
def test_override_forces_a_named_candidate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PUNIE_BLAS", "openblas-wheel")
    choice = choose_blas(cache_dir=tmp_path, openblas_paths=[], mkl_paths=[])
    assert choice.key == "openblas-wheel"
    # Preloaded through the cache's link folder, beside a libgfortran.so.5 symlink.
    assert choice.library.parent.parent == tmp_path / "blas" / "links"
    assert (choice.library.parent / "libgfortran.so.5").resolve().is_file()
    assert choice.library.resolve() == openblas_wheel_libraries()[0].resolve()


def test_disabled_and_macos_measure_nothing(tmp_path: Path) -> None:
    disabled = choose_blas(enabled=False, cache_dir=tmp_path)
    assert (disabled.name, disabled.library, disabled.env) == (REFERENCE_NAME, None, {})
    assert not disabled.is_fast
    mac = choose_blas(platform="darwin", cache_dir=tmp_path)
    assert (mac.name, mac.env, mac.is_fast) == (ACCELERATE_NAME, {}, True)
    assert not (tmp_path / "blas").exists()


def test_debian_openblas_path_is_searched_first() -> None:
    first = openblas_candidates()[0]
    assert first.parts[-2:] == ("openblas-pthread", "libopenblas.so.0")
    assert first.parts[:3] == ("/", "usr", "lib")


def test_child_env_merges_preload_and_keeps_user_settings(tmp_path: Path) -> None:
    lib = tmp_path / "libmkl_rt.so.3"
    choice = BlasChoice("mkl", lib, {"LD_PRELOAD": str(lib)})
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
