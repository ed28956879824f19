"""Held-out loss of a model (with an optional adapter) on conversations, in a child process.

The loss is the mean cross-entropy over every assistant turn's tokens (the same masks the
trainer uses), computed by mlx-lm on the CPU in a child with the fast BLAS preloaded
(`punie.mlx.blas.child_env`). `python -m punie.mlx.train.loss` is the child; it prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from punie.errors import ModelImportError

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

    Runs in a child process with the fast BLAS; raises ModelImportError with the child's last
    lines when it fails.
    """
    from punie.mlx.blas import child_env, choose_blas

    command = [
        sys.executable, "-m", "punie.mlx.train.loss",
        "--model", str(model), "--data", str(conversations), "--limit", str(limit),
        *(["--adapter", str(adapter)] if adapter is not None else []),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=child_env(choose_blas()), check=False
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ModelImportError(
            f"computing the held-out loss of {model}"
            + (f" with adapter {adapter}" if adapter else "")
            + f" on {conversations} failed (exit {done.returncode}); check that mlx_lm loads "
            f"them. Last lines:\n{tail}"
        )
    result = HeldOutLoss(**json.loads(done.stdout.strip().splitlines()[-1]))
    log.info("held_out_loss", model=str(model), adapter=str(adapter), **asdict(result))
    return result


def _compute(model: Path, adapter: Path | None, data: Path, limit: int) -> HeldOutLoss:
    import mlx.core as mx
    from mlx_lm import load

    from punie.errors import DataError
    from punie.mlx.train.batches import masked_loss
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids
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


def main() -> None:
    parser = argparse.ArgumentParser(description="held-out loss on conversations (JSON out)")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=32)
    args = parser.parse_args()
    result = _compute(args.model, args.adapter, args.data, args.limit)
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
