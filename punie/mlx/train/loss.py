"""Held-out loss of a model (with an optional adapter) on conversations, in a child process.

The loss is the mean cross-entropy over every assistant turn's tokens (the same masks the
trainer uses), computed by mlx-lm on the CPU in an MLX child (`punie.mlx.child.call` of
`compute`) with the fast BLAS preloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from punie.mlx.child import call, failing_as_model_error

log = structlog.get_logger(__name__)

MAX_TOKENS_PER_CONVERSATION = 2048


@dataclass(frozen=True)
class HeldOutLoss:
    """Mean loss per assistant token over the conversations that fit."""

    loss: float
    tokens: int
    conversations: int
    skipped: int


def held_out_loss(
    model: Path, conversations: Path, *, adapter: Path | None = None, limit: int = 32
) -> HeldOutLoss:
    """The held-out loss of `model` (+ `adapter`) on the first `limit` conversations.

    Runs in an MLX child with the fast BLAS; raises ModelImportError naming the child, its peak
    memory and its log (with the last lines) when it fails.
    """
    request = {
        "model": str(model),
        "adapter": str(adapter) if adapter is not None else None,
        "data": str(conversations),
        "limit": limit,
    }
    adapter_part = f" with adapter {adapter}" if adapter else ""
    job = f"computing the held-out loss of {model}{adapter_part} on {conversations}"
    job += " (check that mlx_lm loads them)"
    with failing_as_model_error(job):
        values = call("held-out loss", "punie.mlx.train.loss:compute", request)
    result = HeldOutLoss(**values)
    log.info("held_out_loss", model=str(model), adapter=str(adapter), **asdict(result))
    return result


def _compute(model: Path, adapter: Path | None, data: Path, limit: int) -> HeldOutLoss:
    import mlx.core as mx
    from mlx_lm import load

    from punie.errors import DataError
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids
    from punie.mlx.train.trainer import masked_loss
    from punie.records.conversation import read_conversations
    from punie.records.profile import resolve_profile

    lm, tokenizer = load(str(model), adapter_path=str(adapter) if adapter else None)
    lm.eval()
    profile = resolve_profile(str(model), model_dir=model)
    eot = end_of_turn_ids(tokenizer, profile.end_of_turn)
    total, tokens, used, skipped = 0.0, 0, 0, 0
    for index, conversation in enumerate(read_conversations(data)):
        if used >= limit:
            break
        row = conversation.to_openai()
        try:
            example = assistant_mask(
                tokenizer, row["messages"], row.get("tools"), eot, where=f"{data}:{index + 1}"
            )
        except DataError:
            skipped += 1
            continue
        if len(example) > MAX_TOKENS_PER_CONVERSATION or example.trained_tokens == 0:
            skipped += 1
            continue
        batch = mx.array([example.tokens])
        mask = mx.array([example.mask], dtype=mx.float32)
        loss, ntoks = masked_loss(lm, batch, mask)
        mx.eval(loss, ntoks)
        total += float(loss) * int(ntoks)
        tokens += int(ntoks)
        used += 1
    return HeldOutLoss(
        loss=total / tokens if tokens else float("nan"),
        tokens=tokens,
        conversations=used,
        skipped=skipped,
    )


def compute(model: str, adapter: str | None, data: str, limit: int) -> dict[str, Any]:
    """The child's side of `held_out_loss`: the loss as JSON."""
    return asdict(_compute(Path(model), Path(adapter) if adapter else None, Path(data), limit))
