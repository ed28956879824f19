"""Fast BLAS for MLX on Linux CPU: which library to preload into mlx-lm child processes.

The `mlx[cpu]` wheel bundles the reference BLAS (a few GFLOP/s for a float32 matmul). MLX resolves
its `cblas_*` symbols through the dynamic linker, so `LD_PRELOAD` of an optimized BLAS in a child's
environment makes the same matmul tens of times faster; no rebuild, no root.

Which one is chosen by measurement: at first use each candidate present (see
`punie.mlx.blas_candidates`) is verified and timed in a child (`punie.mlx.blas_probe`),
the fastest that computes correct results wins, and the verdict is cached per machine (CPU and
candidate libraries) in `<user cache>/punie/blas/verdict.json`. `PUNIE_BLAS` overrides it
(read only by `blas_override`); `enabled=False` (`--no-fast-blas`) keeps the bundled BLAS.
On macOS MLX already uses Accelerate.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform as platform_module
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import platformdirs
import structlog

from punie.errors import ConfigError
from punie.mlx import machine
from punie.mlx.blas_candidates import (
    CUSTOM,
    KEYS,
    MKL,
    NAMES,
    OPENBLAS_WHEEL,
    REFERENCE,
    SYSTEM_OPENBLAS,
    Candidate,
    find_candidates,
    mkl_candidates,
    openblas_candidates,
    preload_candidate,
)
from punie.mlx.blas_probe import Measurement, probe

__all__ = [
    "ACCELERATE_NAME",
    "MKL_NAME",
    "OPENBLAS_NAME",
    "OPENBLAS_WHEEL_NAME",
    "REFERENCE_NAME",
    "BlasChoice",
    "BlasVerdict",
    "blas_candidates",
    "blas_override",
    "blas_verdict",
    "child_env",
    "choose_blas",
    "mkl_candidates",
    "openblas_candidates",
]

log = structlog.get_logger(__name__)

OPENBLAS_NAME = NAMES[SYSTEM_OPENBLAS]
OPENBLAS_WHEEL_NAME = NAMES[OPENBLAS_WHEEL]
MKL_NAME = NAMES[MKL]
REFERENCE_NAME = NAMES[REFERENCE]
ACCELERATE_NAME = "accelerate (macOS)"
ENV_VAR = "PUNIE_BLAS"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class BlasChoice:
    """The BLAS an mlx-lm child process will use, and the environment that selects it."""

    name: str
    library: Path | None
    env: dict[str, str] = field(default_factory=dict)
    key: str = ""
    gflops: float | None = None
    kernel: str = ""

    @property
    def is_fast(self) -> bool:
        """Whether an optimized BLAS is in use (a preloaded library, or Accelerate on macOS)."""
        return self.library is not None or self.name == ACCELERATE_NAME


@dataclass(frozen=True)
class BlasVerdict:
    """Every candidate's measurement on this machine, and the one chosen (a candidate key)."""

    chosen: Measurement
    measurements: list[Measurement]
    machine: dict[str, Any]
    measured_at: str
    cached: bool
    override: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.key,
            "override": self.override,
            "cached": self.cached,
            "measured_at": self.measured_at,
            "machine": self.machine,
            "candidates": [m.to_json() for m in self.measurements],
        }


def blas_override(env: Mapping[str, str] | None = None) -> str | None:
    """`PUNIE_BLAS`: a candidate key, or a library path; None (or `auto`) means measure.

    The one place the variable is read. A value that is neither raises ConfigError.
    """
    value = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    if value in ("", "auto"):
        return None
    if value in KEYS:
        return value
    if "/" in value:
        if not Path(value).is_file():
            raise ConfigError(f"{ENV_VAR}={value}: no such library file")
        return value
    raise ConfigError(
        f"{ENV_VAR}={value}: expected auto, {', '.join(KEYS)} or a path to a BLAS library (.so)"
    )


def blas_candidates(*, cache_dir: Path | None = None) -> list[Candidate]:
    """Every BLAS present here (the wheel's OpenBLAS through its link folder), reference last."""
    root = (Path(cache_dir) if cache_dir is not None else _default_cache()) / "blas"
    return find_candidates(link_root=root / "links")


def blas_verdict(
    *,
    remeasure: bool = False,
    override: str | None = None,
    cache_dir: Path | None = None,
    cpu: str | None = None,
    openblas_paths: Sequence[Path] | None = None,
    wheel_paths: Sequence[Path] | None = None,
    mkl_paths: Sequence[Path] | None = None,
) -> BlasVerdict:
    """The BLAS verdict for this machine: cached when the CPU and the candidates are unchanged,
    else each candidate is verified and timed in a child (a few seconds) and the result cached.

    `override` is a `blas_override()` value. `cpu` replaces the CPU signature and the path
    arguments replace the default search lists (tests use them to simulate other machines).
    Raises ConfigError when the override names a library that is absent or was refused.
    """
    root = (Path(cache_dir) if cache_dir is not None else _default_cache()) / "blas"
    candidates = find_candidates(
        link_root=root / "links",
        openblas_paths=openblas_paths,
        wheel_paths=wheel_paths,
        mkl_paths=mkl_paths,
    )
    wanted = list(candidates)
    custom = None
    if override is not None and override not in KEYS:
        custom = preload_candidate(CUSTOM, Path(override), f"custom ({override})")
        wanted.append(custom)
    about = _machine(cpu)
    path = root / "verdict.json"
    cached = {} if remeasure else _load(path, about, [c.identity() for c in candidates])
    measurements: dict[str, Measurement] = {}
    fresh = False
    for candidate in wanted:
        identity = candidate.identity()
        if identity in cached:
            measurements[identity] = cached[identity]
        else:
            measurements[identity] = probe(
                candidate.key, candidate.name, candidate.library, _probe_env(candidate)
            )
            fresh = True
    if fresh:
        _save(path, about, [c.identity() for c in candidates], {**cached, **measurements})
    by_key = {m.key: m for m in measurements.values()}
    chosen = _pick(override, by_key, custom)
    verdict = BlasVerdict(
        chosen=chosen,
        measurements=list(measurements.values()),
        machine=about,
        measured_at=_stamp(path) if not fresh else datetime.now(UTC).isoformat(timespec="seconds"),
        cached=not fresh,
        override=override,
    )
    log.info("blas_verdict", chosen=chosen.key, gflops=chosen.gflops, cached=verdict.cached)
    return verdict


class VerdictOptions(TypedDict, total=False):
    """The keyword arguments `choose_blas` hands on to `blas_verdict` (see there)."""

    remeasure: bool
    cache_dir: Path | None
    cpu: str | None
    openblas_paths: Sequence[Path] | None
    wheel_paths: Sequence[Path] | None
    mkl_paths: Sequence[Path] | None


def choose_blas(
    *, enabled: bool = True, platform: str | None = None, **verdict: Unpack[VerdictOptions]
) -> BlasChoice:
    """The BLAS for MLX child processes: measured once per machine, then cached (see module doc).

    `enabled=False` keeps the reference BLAS; `PUNIE_BLAS` forces one; macOS uses Accelerate.
    The other keywords go to `blas_verdict`.
    """
    platform = platform or sys.platform
    if platform == "darwin":
        return BlasChoice(ACCELERATE_NAME, None, {}, key="accelerate")
    if not enabled or not platform.startswith("linux"):
        return BlasChoice(REFERENCE_NAME, None, {}, key=REFERENCE)
    override = blas_override()
    if override == REFERENCE:
        return BlasChoice(REFERENCE_NAME, None, {}, key=REFERENCE)
    chosen = blas_verdict(override=override, **verdict).chosen
    if chosen.key == REFERENCE:
        log.warning(
            "blas_reference_only",
            hint="`uv sync` installs ngsolve-openblas (Linux x86-64); or apt-get install "
            "libopenblas0-pthread",
        )
        return BlasChoice(REFERENCE_NAME, None, {}, key=REFERENCE, gflops=chosen.gflops)
    library = Path(chosen.library or "")
    return BlasChoice(
        chosen.name,
        library,
        {"LD_PRELOAD": str(library)},
        key=chosen.key,
        gflops=chosen.gflops,
        kernel=chosen.kernel,
    )


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


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
"""What caps the worker threads of OpenBLAS, MKL and any OpenMP runtime."""


def thread_env(threads: int, base: Mapping[str, str]) -> dict[str, str]:
    """The settings that cap a child's BLAS at `threads` workers; a cap already in `base` (the
    user's) is kept. OpenBLAS workers spin while they wait: two servers with two workers each
    on 2 cores took 5.5x as long as with one each (Intel Xeon, ngsolve-openblas)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return {key: str(threads) for key in THREAD_VARS if key not in base}


# --- helpers -----------------------------------------------------------------------------------


def _pick(
    override: str | None, by_key: dict[str, Measurement], custom: Candidate | None
) -> Measurement:
    if override is None:
        verified = [m for m in by_key.values() if m.ok and m.gflops is not None]
        if not verified:  # even the bundled BLAS failed: MLX itself is broken; keep it anyway
            return by_key[REFERENCE]
        return max(verified, key=lambda m: m.gflops or 0.0)
    key = CUSTOM if custom is not None else override
    if key not in by_key:
        present = ", ".join(k for k in by_key if k != REFERENCE) or "none"
        raise ConfigError(
            f"{ENV_VAR}={override}: no {NAMES[key]} on this machine (present: {present})"
        )
    measurement = by_key[key]
    if not measurement.ok:
        raise ConfigError(f"{ENV_VAR}={override} refused: {measurement.reason}")
    return measurement


def _probe_env(candidate: Candidate) -> dict[str, str]:
    """This process's environment without any preload (it may itself run a preloaded BLAS),
    plus the candidate's."""
    base = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return child_env(BlasChoice(candidate.name, candidate.library, candidate.env), base)


def _machine(cpu: str | None) -> dict[str, Any]:
    try:
        mlx = importlib.metadata.version("mlx")
    except importlib.metadata.PackageNotFoundError:
        mlx = None
    return {
        "cpu": cpu if cpu is not None else machine.cpu_signature(),
        "cpus": machine.cpu_count(),
        "machine": platform_module.machine(),
        "mlx": mlx,
        "python": sys.executable,
    }


def _load(path: Path, about: dict[str, Any], auto: list[str]) -> dict[str, Measurement]:
    """The cached measurements, or {} when the file is missing, stale or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["format"] != CACHE_FORMAT or data["machine"] != about or data["auto"] != auto:
            log.info("blas_cache_stale", path=str(path))
            return {}
        return {k: Measurement.from_json(v) for k, v in data["measurements"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save(
    path: Path, about: dict[str, Any], auto: list[str], measurements: dict[str, Measurement]
) -> None:
    body = {
        "format": CACHE_FORMAT,
        "machine": about,
        "auto": auto,
        "measurements": {k: m.to_json() for k, m in measurements.items()},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # an unwritable cache costs a re-measurement next time, no more
        log.warning("blas_cache_unwritable", path=str(path), error=str(exc))


def _stamp(path: Path) -> str:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    except OSError:
        return ""


def _default_cache() -> Path:
    return Path(platformdirs.user_cache_dir("punie"))
