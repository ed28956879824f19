"""Child-process check for test_train_frozen_cache: the cached path's loss and gradients (LoRA,
or a full fine-tune of the top layers; with Punie's blocked attention, as training runs) against
the full model's (MLX's own attention), on the real embedded model. Prints one JSON line.

    python tests/train/frozen_cache_check.py MODEL_DIR LAYERS ROWS.json [lora|full]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from punie.mlx import attention
    from punie.mlx.train.batches import masked_loss, pack_batch
    from punie.mlx.train.frozen_cache import CachedLoss, build_cached_split, frozen_cut
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    model_dir, layers, rows_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    fine_tune_type = sys.argv[4] if len(sys.argv) > 4 else "lora"
    rows = json.loads(Path(rows_file).read_text(encoding="utf-8"))
    model, tokenizer = load(model_dir)
    model.freeze()
    if fine_tune_type == "full":
        for layer in model.layers[-layers:]:
            layer.unfreeze()
    else:
        linear_to_lora_layers(model, layers, {"rank": 8, "scale": 20.0, "dropout": 0.0})
        # Non-zero adapters (lora_b starts at zero, which would zero every lora_a gradient).
        mx.random.seed(0)
        model.update(
            tree_map(lambda p: 0.02 * mx.random.normal(p.shape), model.trainable_parameters())
        )
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    examples = [assistant_mask(tokenizer, r["messages"], r.get("tools"), eot) for r in rows]
    cut = frozen_cut(model, layers)
    attention.install({})  # the cache and the cached loss as training runs them
    split = build_cached_split(model, examples, cut, 1024)
    attention.uninstall()  # the plain loss with MLX's own attention
    ids = list(range(len(examples)))
    arrays, _ = split.batch(ids, 1024)
    tokens, mask, _ = pack_batch(examples, 1024)

    (plain, plain_n), plain_grads = nn.value_and_grad(model, masked_loss)(
        model, mx.array(tokens), mx.array(mask)
    )
    attention.install({})
    (cached, cached_n), cached_grads = nn.value_and_grad(model, CachedLoss(cut))(model, *arrays)
    attention.uninstall()
    mx.eval(plain, cached, plain_grads, cached_grads)
    grads = []
    for (name, a), (other, b) in zip(
        tree_flatten(plain_grads), tree_flatten(cached_grads), strict=True
    ):
        assert name == other
        grads.append(
            {"name": name, "max_diff": mx.abs(a - b).max().item(), "max": mx.abs(a).max().item()}
        )
    print(
        json.dumps(
            {
                "lengths": [len(e) for e in examples],
                "cut": cut,
                "shared_prefix": int(arrays[0].shape[1]),
                "pad_width": int(tokens.shape[1]),
                "plain_loss": plain.item(),
                "cached_loss": cached.item(),
                "plain_tokens": plain_n.item(),
                "cached_tokens": cached_n.item(),
                "grads": grads,
            }
        )
    )


if __name__ == "__main__":
    main()
