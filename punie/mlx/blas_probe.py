"""Verify and time one BLAS inside a child process: `python -m punie.mlx.blas_probe`.

The child (started with the candidate's `LD_PRELOAD`) checks that MLX's float32 matmul agrees
with numpy's, finds which mapped library `cblas_sgemm` resolves to, asks OpenBLAS/MKL which
kernel they run, times a square matmul for a fraction of a second, and prints one JSON line.
`probe()` is the parent side: it starts the child and turns its exit (a wrong result, a crash such
as SIGILL, a library the dynamic linker did not load) into a `Measurement` with a reason.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MATMUL_N = 1024
BUDGET_S = 0.3
TIMEOUT_S = 60.0
# Float32 products of 96x80 by 80x112 normal matrices agree with float64 to ~1e-6 relative.
TOLERANCE = 1e-3
_MAPPED_HINTS = ("blas", "lapack", "mkl", "gfortran", "quadmath")
_MKL_KERNEL = re.compile(r"libmkl_(def|mc3?|avx\w*)\.so")


@dataclass(frozen=True)
class Measurement:
    """How one candidate BLAS did in its child: verified or refused (with the reason), speed."""

    key: str
    name: str
    library: str | None
    ok: bool
    reason: str = ""
    gflops: float | None = None
    kernel: str = ""
    max_error: float | None = None
    mapped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# --- child side --------------------------------------------------------------------------------


def _mapped() -> list[tuple[int, int, str]]:
    regions = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            regions.append((lo, hi, parts[5]))
    return regions


def _sgemm_owner(regions: list[tuple[int, int, str]]) -> str | None:
    """The file that `cblas_sgemm` resolves to in the global scope (None: MLX's bundled one)."""
    try:
        address = ctypes.cast(ctypes.CDLL(None).cblas_sgemm, ctypes.c_void_p).value
    except AttributeError:
        return None
    return next((path for lo, hi, path in regions if lo <= (address or 0) < hi), None)


def _kernel() -> str:
    """What the loaded BLAS says about itself: OpenBLAS's core and build, MKL's version."""
    lib = ctypes.CDLL(None)
    parts = []
    for symbol in ("openblas_get_corename", "openblas_get_config"):
        function = getattr(lib, symbol, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            parts.append(function().decode(errors="replace"))
    version = getattr(lib, "mkl_get_version_string", None)
    if version is not None:
        buffer = ctypes.create_string_buffer(256)
        version(buffer, ctypes.c_int(len(buffer)))
        parts.append(buffer.value.decode(errors="replace").strip())
        # MKL loads its kernels by CPU: libmkl_def (generic), libmkl_avx2, libmkl_avx512, ...
        kernels = [Path(p).name for _, _, p in _mapped() if _MKL_KERNEL.match(Path(p).name)]
        parts.append("kernels " + ", ".join(dict.fromkeys(kernels)) if kernels else "")
    return " | ".join(dict.fromkeys(p for p in parts if p))


def child_main(n: int = MATMUL_N, budget_s: float = BUDGET_S) -> dict[str, Any]:
    """Check and time MLX's float32 matmul in this process; the result is JSON-ready."""
    import mlx.core as mx
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((96, 80)).astype(np.float32)
    b = rng.standard_normal((80, 112)).astype(np.float32)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    products = [
        np.array(mx.array(a) @ mx.array(b)),
        np.array(mx.array(np.ascontiguousarray(a.T)).T @ mx.array(b)),  # a transposed operand
    ]
    scale = float(np.abs(reference).max())
    errors = [float(np.abs(p - reference).max()) / scale for p in products]
    max_error = max(errors) if all(np.isfinite(errors)) else float("inf")

    x = mx.random.normal((n, n))
    y = mx.random.normal((n, n))
    mx.eval(x @ y)  # warm-up: thread pools, first touch
    best = float("inf")
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        mx.eval(x @ y)
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - started >= budget_s:
            break
    regions = _mapped()
    # Only the first mapping of each file, in load order, for the libraries BLAS is made of.
    # numpy's own (symbol-prefixed) OpenBLAS is left out: MLX never calls it.
    mapped = list(
        dict.fromkeys(
            p
            for _, _, p in regions
            if any(h in Path(p).name for h in _MAPPED_HINTS) and "numpy.libs" not in p
        )
    )
    return {
        "max_error": max_error,
        "gflops": 2 * n**3 / best / 1e9,
        "sgemm_owner": _sgemm_owner(regions),
        "kernel": _kernel(),
        "mapped": mapped,
    }


# --- parent side -------------------------------------------------------------------------------


def probe(
    key: str,
    name: str,
    library: Path | None,
    env: Mapping[str, str],
    *,
    timeout_s: float = TIMEOUT_S,
) -> Measurement:
    """Run the child with `env` (which preloads `library`, or nothing for the bundled BLAS)."""
    command = [sys.executable, "-m", "punie.mlx.blas_probe"]
    started = time.monotonic()

    def refused(reason: str, **extra: Any) -> Measurement:
        seconds = round(time.monotonic() - started, 2)
        log.warning("blas_refused", candidate=key, library=str(library), reason=reason)
        lib = str(library) if library else None
        return Measurement(key, name, lib, False, reason, seconds=seconds, **extra)

    try:
        done = subprocess.run(
            command,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return refused(f"timed out after {timeout_s:g} s")
    stderr = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode < 0:
        return refused(f"crashed ({signal.Signals(-done.returncode).name})")
    if done.returncode != 0:
        return refused(f"exited with status {done.returncode}: {(stderr or ['?'])[-1][:300]}")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return refused("printed no result")
    mapped, owner = result["mapped"], result["sgemm_owner"]
    kernel = result["kernel"] or _bundled_kernel(mapped)
    if library is not None:
        want = os.path.realpath(library)
        if owner is None or os.path.realpath(owner) != want:
            linker = next((line for line in stderr if "ld.so" in line), "")
            detail = linker or f"cblas_sgemm comes from {owner or 'the bundled BLAS'}"
            return refused(f"not loaded: {detail[:300]}", mapped=mapped)
    if not result["max_error"] <= TOLERANCE:
        return refused(
            f"wrong matmul (max relative error {result['max_error']:.1e} against numpy)",
            max_error=result["max_error"],
            mapped=mapped,
            kernel=kernel,
        )
    measurement = Measurement(
        key,
        name,
        str(library) if library else None,
        True,
        gflops=round(result["gflops"], 1),
        kernel=kernel,
        max_error=result["max_error"],
        mapped=mapped,
        seconds=round(time.monotonic() - started, 2),
    )
    log.info("blas_measured", candidate=key, gflops=measurement.gflops, kernel=kernel)
    return measurement


def kernel_summary(kernel: str) -> str:
    """A short form of a `Measurement.kernel`: "OpenBLAS 0.3.33 Cooperlake", "MKL 2026.2 ..."."""
    parts = kernel.split(" | ")
    config = next((p.split() for p in parts if p.startswith("OpenBLAS ")), None)
    if config is not None:
        return " ".join([*config[:2], parts[0]]) if len(parts) > 1 else " ".join(config[:2])
    if "Math Kernel Library" in kernel:
        version = re.search(r"Version (\S+?)-", kernel)
        kernels = next((p for p in parts if p.startswith("kernels ")), "")
        return f"MKL {version.group(1) if version else '?'} {kernels}".strip()
    return kernel


def _bundled_kernel(mapped: list[str]) -> str:
    blas = next((Path(p).name for p in mapped if Path(p).name.startswith("libblas")), None)
    return f"reference BLAS ({blas})" if blas else ""


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else MATMUL_N
    print(json.dumps(child_main(size, float(sys.argv[2]) if len(sys.argv) > 2 else BUDGET_S)))
