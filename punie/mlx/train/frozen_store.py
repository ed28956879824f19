"""Frozen-layer states kept on disk: a second run on the same rows skips the cache build.

The states after the frozen bottom layers depend only on the model's weights, how many layers are
frozen, the examples' tokens and the truncation length; a recipe search, a resumed run or a rerun
with another learning rate or step count reuses them. Files are keyed by a digest of exactly
those inputs, written atomically, and the oldest beyond `KEEP_FILES` are removed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import mlx.core as mx
import numpy as np
import platformdirs
import structlog

from punie.mlx.train.frozen_cache import CachedSplit
from punie.mlx.train.masking import MaskedExample

log = structlog.get_logger(__name__)

KEEP_FILES = 8
STORE_ENV = "PUNIE_FROZEN_STATES_DIR"
"""Where the states are kept (default: the user cache's `frozen-states`); `off` keeps none."""


def store_dir() -> Path | None:
    """The folder for stored states, or None when storing is turned off."""
    value = os.environ.get(STORE_ENV, "")
    if value.lower() == "off":
        return None
    return Path(value) if value else platformdirs.user_cache_path("punie") / "frozen-states"


def states_key(
    model_dir: str,
    cut: int,
    max_seq_length: int,
    share_prefix: bool,
    examples: Sequence[MaskedExample],
) -> str:
    """A digest of everything the states depend on: the model's files (name, size, mtime), the
    number of frozen layers, the truncation length and every example's tokens."""
    h = hashlib.sha256()
    folder = Path(model_dir)
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("config.json")):
        stat = path.stat()
        h.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    h.update(f"{folder.resolve()}|{cut}|{max_seq_length}|{share_prefix}|".encode())
    for example in examples:
        h.update(len(example.tokens).to_bytes(4, "little"))
        h.update(np.asarray(example.tokens[:max_seq_length], dtype="<i4").tobytes())
    return h.hexdigest()[:32]


def load_states(
    path: Path, examples: list[MaskedExample], *, share_prefix: bool
) -> tuple[CachedSplit, float] | None:
    """The stored split at `path` and the seconds its build took, or None when it is missing or
    does not match the examples."""
    if not path.is_file():
        return None
    try:
        arrays, metadata = mx.load(str(path), return_metadata=True)
    except (RuntimeError, ValueError) as exc:
        log.warning("frozen_states_unreadable", path=str(path), error=str(exc))
        return None
    suffixes = [arrays.get(f"s{i}") for i in range(len(examples))]
    if "prefix" not in arrays or any(s is None for s in suffixes):
        log.warning("frozen_states_incomplete", path=str(path))
        return None
    path.touch()  # the newest use keeps it
    split = CachedSplit(
        examples,
        arrays["prefix"],
        suffixes,  # type: ignore[arg-type]
        share_prefix=share_prefix,
        computed_tokens=int(metadata.get("computed_tokens", "0")),
    )
    return split, float(metadata.get("build_seconds", "0"))


def save_states(path: Path, split: CachedSplit, build_seconds: float) -> bool:
    """Write the split's states (and the seconds their build took) to `path` atomically (False
    when a state is empty and so cannot be stored); then remove the oldest beyond `KEEP_FILES`."""
    arrays = {"prefix": split.prefix}
    for i, suffix in enumerate(split.suffixes):
        if suffix.size == 0:
            return False
        arrays[f"s{i}"] = suffix
    if split.prefix.size == 0:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.safetensors")
    mx.save_safetensors(str(partial), arrays,
                        metadata={"computed_tokens": str(split.computed_tokens),
                                  "build_seconds": f"{build_seconds:.2f}"})  # fmt: skip
    partial.replace(path)
    stored = sorted(path.parent.glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    for old in [p for p in stored if ".partial." not in p.name][:-KEEP_FILES]:
        old.unlink(missing_ok=True)
    log.info("frozen_states_saved", path=str(path), megabytes=round(split.nbytes / 2**20, 1))
    return True
