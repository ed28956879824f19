"""The BLAS libraries present on this machine that MLX child processes could preload.

Candidates, by key: `system-openblas` (Debian's `libopenblas0-pthread`, Fedora's `libopenblasp`),
`openblas-wheel` (the DYNAMIC_ARCH OpenBLAS inside the PyPI `ngsolve-openblas` wheel), `mkl` (the
PyPI `mkl` wheel's `libmkl_rt`, where it is installed) and `reference` (the BLAS bundled with the
`mlx[cpu]` wheel: nothing preloaded).

The wheel's OpenBLAS needs `libgfortran.so.5`, which a machine without gfortran lacks; the
`mlx[cpu]` and numpy wheels carry copies under mangled names. So the wheel is preloaded through a
folder in Punie's cache holding symlinks: the library itself, `libgfortran.so.5` pointing at a
carried copy, and that copy's own mangled dependencies (libquadmath). The library's RPATH is
`$ORIGIN`, and the dynamic linker takes `$ORIGIN` from the symlink's folder, so it finds them
there: no `LD_LIBRARY_PATH`, no root.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SYSTEM_OPENBLAS = "system-openblas"
OPENBLAS_WHEEL = "openblas-wheel"
MKL = "mkl"
REFERENCE = "reference"
CUSTOM = "custom"
KEYS = (SYSTEM_OPENBLAS, OPENBLAS_WHEEL, MKL, REFERENCE)

NAMES = {
    SYSTEM_OPENBLAS: "openblas (system)",
    OPENBLAS_WHEEL: "openblas (PyPI wheel ngsolve-openblas)",
    MKL: "mkl (PyPI wheel)",
    REFERENCE: "reference (bundled)",
}
# PyPI wheels that ship a DYNAMIC_ARCH OpenBLAS exporting the standard `cblas_*` names.
# (scipy-openblas32 prefixes its symbols; cmeel-openblas is built for one CPU family only.)
OPENBLAS_WHEELS = (("ngsolve_openblas", "libopenblas*.so*"),)


@dataclass(frozen=True)
class Candidate:
    """One BLAS a child process can use: `library` is what `LD_PRELOAD` names (None: bundled)."""

    key: str
    name: str
    library: Path | None
    env: dict[str, str] = field(default_factory=dict)

    def identity(self) -> str:
        """What the cached measurement of this candidate depends on: the files, not just paths."""
        if self.library is None:
            return self.key
        parts = [self.key, str(self.library)]
        for path in _link_targets(self.library):
            stat = path.stat()
            parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
        return "|".join(parts)


def reference_candidate() -> Candidate:
    return Candidate(REFERENCE, NAMES[REFERENCE], None)


def preload_candidate(key: str, library: Path, name: str | None = None) -> Candidate:
    return Candidate(key, name or NAMES[key], library, {"LD_PRELOAD": str(library)})


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


def openblas_wheel_libraries() -> list[Path]:
    """The OpenBLAS libraries inside installed wheels (found without importing the package:
    `ngsolve_openblas/__init__` dlopens its library into the importing process)."""
    found = []
    for package, pattern in OPENBLAS_WHEELS:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            found += sorted(p for p in Path(location).glob(pattern) if p.is_file())
    return found


def gfortran_copies() -> list[Path]:
    """`libgfortran.so.5` copies that wheels carry under mangled names (mlx[cpu], numpy)."""
    found = []
    for package, libs in (("mlx", "mlx_cpu.libs"), ("numpy", "numpy.libs")):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            found += sorted((Path(location).parent / libs).glob("libgfortran*.so.5*"))
    return found


def link_folder(library: Path, gfortran: Path, root: Path) -> Path:
    """A folder under `root` where `library` sits beside `libgfortran.so.5` (see module doc).

    Named by what the links point at, built in a temporary folder and renamed into place, so
    concurrent callers agree and an upgraded wheel gets a new folder.
    """
    library, gfortran = library.resolve(), gfortran.resolve()
    digest = hashlib.sha256(f"{library}\0{gfortran}".encode()).hexdigest()[:12]
    target = root / f"openblas-wheel-{digest}"
    linked = target / library.name
    if linked.is_file():
        return linked
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".openblas-wheel-", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache folder is an ordinary one
    try:
        links = {library.name: library, "libgfortran.so.5": gfortran}
        # The carried copy's own dependencies (libquadmath-<hash>...) are found via its $ORIGIN,
        # which is this folder too.
        links |= {p.name: p for p in gfortran.parent.glob("libquadmath*.so*")}
        for name, path in links.items():
            (staging / name).symlink_to(path)
        try:
            os.rename(staging, target)
        except OSError:
            if not linked.is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("blas_link_folder", folder=str(target), library=str(library))
    return linked


def find_candidates(
    *,
    link_root: Path,
    openblas_paths: Sequence[Path] | None = None,
    wheel_paths: Sequence[Path] | None = None,
    mkl_paths: Sequence[Path] | None = None,
) -> list[Candidate]:
    """Every candidate present here, `reference` last. The path arguments replace the default
    search lists (tests use them to build machines with fake or missing libraries)."""
    found = []
    openblas = _first_file(openblas_paths if openblas_paths is not None else openblas_candidates())
    if openblas is not None:
        found.append(preload_candidate(SYSTEM_OPENBLAS, openblas))
    wheel = _first_file(wheel_paths if wheel_paths is not None else openblas_wheel_libraries())
    if wheel is not None:
        linked = _wheel_preload(wheel, link_root)
        if linked is not None:
            found.append(preload_candidate(OPENBLAS_WHEEL, linked))
    mkl = _first_file(mkl_paths if mkl_paths is not None else mkl_candidates())
    if mkl is not None:
        found.append(preload_candidate(MKL, mkl))
    return [*found, reference_candidate()]


def _wheel_preload(wheel: Path, link_root: Path) -> Path | None:
    """What to preload for a wheel's OpenBLAS: its link folder, or itself where the system has
    libgfortran.so.5; None (logged) where neither works."""
    gfortran = next(iter(gfortran_copies()), None)
    if gfortran is None:
        if ctypes.util.find_library("gfortran"):
            return wheel
        log.warning("blas_wheel_unusable", library=str(wheel), reason="no libgfortran.so.5")
        return None
    try:
        return link_folder(wheel, gfortran, link_root)
    except OSError as exc:
        log.warning("blas_wheel_unusable", library=str(wheel), reason=f"link folder: {exc}")
        return None


def _link_targets(library: Path) -> list[Path]:
    """The real files behind `library`: itself, and for a link folder the gfortran it links."""
    paths = [library.resolve()]
    gfortran = library.parent / "libgfortran.so.5"
    if library.is_symlink() and gfortran.exists():
        paths.append(gfortran.resolve())
    return paths


def _first_file(paths: Sequence[Path]) -> Path | None:
    return next((path for path in paths if path.is_file()), None)


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))
