"""Fast BLAS for MLX on Linux CPU: which optimized library to preload into mlx-lm child processes.

The `mlx[cpu]` wheel bundles the reference BLAS (a 2048² float32 matmul runs at ~6-8 GFLOP/s);
preloading system OpenBLAS or the PyPI `mkl` wheel's `libmkl_rt` makes the same matmul ~30x
faster. MLX resolves its `cblas_*`/LAPACK symbols through the dynamic linker, so `LD_PRELOAD`
in the child's environment is enough; no rebuild, no root. On macOS MLX already uses Accelerate.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

OPENBLAS_NAME = "openblas (system)"
MKL_NAME = "mkl (PyPI wheel)"
REFERENCE_NAME = "reference (bundled)"
ACCELERATE_NAME = "accelerate (macOS)"


@dataclass(frozen=True)
class BlasChoice:
    """The BLAS an mlx-lm child process will use, and the environment that selects it."""

    name: str
    library: Path | None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_fast(self) -> bool:
        """Whether an optimized BLAS is in use (a preloaded library, or Accelerate on macOS)."""
        return self.library is not None or self.name == ACCELERATE_NAME


def openblas_candidates() -> list[Path]:
    """Where distributions install OpenBLAS, most preferred first.

    Debian/Ubuntu's `libopenblas0-pthread` ships `/usr/lib/<multiarch>/openblas-pthread/
    libopenblas.so.0` and points the `/usr/lib/<multiarch>/libopenblas.so.0` alternative at it;
    Fedora/RHEL ship `/usr/lib64/libopenblasp.so.0` (pthreads) and `libopenblas.so.0`.
    """
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu"
    lib = Path("/usr/lib") / multiarch
    return [
        lib / "openblas-pthread" / "libopenblas.so.0",
        lib / "libopenblas.so.0",
        lib / "openblas-openmp" / "libopenblas.so.0",
        Path("/usr/lib64/libopenblasp.so.0"),
        Path("/usr/lib64/libopenblas.so.0"),
    ]


def mkl_candidates(prefixes: Sequence[Path] | None = None) -> list[Path]:
    """Where the PyPI `mkl` wheel puts `libmkl_rt` (the environment's `lib/`, not site-packages)."""
    roots = prefixes if prefixes is not None else _unique([Path(sys.prefix), Path(sys.base_prefix)])
    return [
        root / "lib" / name
        for root in roots
        for name in ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so")
    ]


def choose_blas(
    *,
    enabled: bool = True,
    openblas_paths: Sequence[Path] | None = None,
    mkl_paths: Sequence[Path] | None = None,
    platform: str | None = None,
) -> BlasChoice:
    """Pick the fastest available BLAS for MLX child processes.

    Linux: system OpenBLAS, else the `mkl` wheel's `libmkl_rt`, else the bundled reference BLAS.
    `enabled=False` keeps the reference BLAS. macOS already uses Accelerate. The path arguments
    replace the default search lists (tests use them to simulate a machine without OpenBLAS).
    """
    platform = platform or sys.platform
    if platform == "darwin":
        return BlasChoice(ACCELERATE_NAME, None, {})
    if not enabled or not platform.startswith("linux"):
        return BlasChoice(REFERENCE_NAME, None, {})
    openblas = _first_file(openblas_paths if openblas_paths is not None else openblas_candidates())
    if openblas is not None:
        return BlasChoice(OPENBLAS_NAME, openblas, {"LD_PRELOAD": str(openblas)})
    mkl = _first_file(mkl_paths if mkl_paths is not None else mkl_candidates())
    if mkl is not None:
        # Thread settings (MKL_NUM_THREADS, KMP_BLOCKTIME, MKL_THREADING_LAYER) made no
        # measurable difference on a 2-core x86-64 host, so MKL's defaults are kept.
        return BlasChoice(MKL_NAME, mkl, {"LD_PRELOAD": str(mkl)})
    log.warning(
        "blas_reference_only",
        hint="install libopenblas0-pthread or `uv add mkl` for ~30x faster MLX on CPU",
    )
    return BlasChoice(REFERENCE_NAME, None, {})


def child_env(choice: BlasChoice, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child process environment: `base` (default: this process's) plus the BLAS settings.

    A library already in the user's `LD_PRELOAD` is kept; ours goes first so its BLAS symbols win.
    Thread settings the user set explicitly are not overridden.
    """
    env = dict(os.environ if base is None else base)
    for key, value in choice.env.items():
        if key == "LD_PRELOAD":
            existing = [p for p in env.get(key, "").replace(":", " ").split() if p != value]
            env[key] = " ".join([value, *existing])
        else:
            env.setdefault(key, value)
    return env


def _first_file(paths: Sequence[Path]) -> Path | None:
    for path in paths:
        if path.is_file():
            return path
    return None


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))
