"""What this machine is, for BLAS verdicts, `punie doctor` and benchmark reports."""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's marketing name (`model name` in /proc/cpuinfo); on ARM, implementer and part."""
    fields = _cpuinfo()
    if "model name" in fields:
        return fields["model name"]
    if "CPU part" in fields:
        return (
            f"{platform.machine()} implementer {fields.get('CPU implementer', '?')} part "
            + (fields["CPU part"])
        )
    return platform.processor() or platform.machine()


def cpu_vendor() -> str | None:
    """`GenuineIntel`, `AuthenticAMD`, ... (`vendor_id` in /proc/cpuinfo), or None off x86 Linux."""
    return _cpuinfo().get("vendor_id")


def cpu_signature() -> str:
    """The CPU model plus what tells two CPUs sold under one name apart (a VM often reports just
    "AMD EPYC"): family, model, stepping and a digest of the feature flags."""
    fields = _cpuinfo()
    ids = " ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields)
    flags = fields.get("flags") or fields.get("Features") or ""
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:8]
    return f"{cpu_model()} ({ids}{', ' if ids else ''}flags {digest})"


def cpu_count() -> int:
    """CPUs this process may run on (its affinity), not the host's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cores_each(children: int) -> int:
    """The CPUs each of `children` processes running at once gets (at least one)."""
    return max(1, cpu_count() // max(1, children))


def memory_bytes(field: str = "MemTotal") -> int | None:
    """Total memory (``field`` of /proc/meminfo: MemAvailable for what can still be allocated),
    or None where there is no /proc."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages (measurements are noisy when they exceed the CPUs)."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def describe() -> dict[str, object]:
    """The machine in one JSON-ready dict."""
    return {
        "cpu": cpu_model(),
        "cpu_signature": cpu_signature(),
        "vendor": cpu_vendor(),
        "machine": platform.machine(),
        "cpus": cpu_count(),
        "memory_bytes": memory_bytes(),
        "load_average": load_average(),
        "platform": platform.platform(),
    }
