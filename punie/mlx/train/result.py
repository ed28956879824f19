"""What a training run hands back: where the adapter is, how the loss ended, what it cost."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """The outcome of `train()`; also written to `<adapter dir>/train_result.json`."""

    adapter_dir: Path
    recipe: str
    steps: int
    resumed_from: int
    final_train_loss: float | None
    final_valid_loss: float | None
    trained_tokens: int
    processed_tokens: int
    seconds: float
    loss_jsonl: Path
    curve_png: Path | None
    blas: str
    fingerprint: str
    frozen_cache_skipped_seconds: float = 0.0
    """The build time of frozen-layer states reused from the store (not spent in `seconds`)."""
    dequantized_modules: int = 0  # quantized layers trained through float32 copies (QLoRA on CPU)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (paths as strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainResult:
        """The inverse of `to_dict`."""
        values = dict(data)
        for key in ("adapter_dir", "loss_jsonl", "curve_png"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)
