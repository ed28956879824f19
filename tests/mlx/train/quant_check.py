"""Child-process check for test_train_quantized: the embedded model's 4-bit copy, its masked loss
through mlx-lm's quantized layers and through `dequantize_base`'s float32 copies. One JSON line.

    python tests/mlx/train/quant_check.py Q4_MODEL_DIR ROWS.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import mlx.core as mx
    from mlx_lm import load

    from punie.mlx.train.batches import masked_loss, pack_batch
    from punie.mlx.train.dequant import dequantize_base, float32_nbytes, quantized_modules
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    model_dir, rows_file = sys.argv[1], sys.argv[2]
    rows = json.loads(Path(rows_file).read_text(encoding="utf-8"))
    model, tokenizer = load(model_dir)
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    examples = [assistant_mask(tokenizer, r["messages"], r.get("tools"), eot) for r in rows]
    tokens, mask, _ = pack_batch(examples, 1024)
    batch = (mx.array(tokens), mx.array(mask))
    modules = quantized_modules(model)
    quantized_loss = masked_loss(model, *batch)[0].item()
    estimate = float32_nbytes(modules)
    full = dequantize_base(model, fine_tune_type="full")
    small = dequantize_base(model, fine_tune_type="lora", available=estimate)  # 2x what fits
    done = dequantize_base(model, fine_tune_type="lora")
    assert done is not None
    names = {name for name, _ in modules}
    weights = sum(
        m.weight.nbytes for name, m in model.named_modules() if name in names and "weight" in m
    )
    print(
        json.dumps(
            {
                "quantized_modules": len(modules),
                "dequantized_modules": done.modules,
                "left_quantized": len(quantized_modules(model)),
                "full_fine_tune_kept": full is None,
                "too_big_kept": small is None,
                "estimated_bytes": estimate,
                "float32_weight_bytes": weights,
                "dtypes": sorted({str(p.dtype) for p in _leaves(model)}),
                "quantized_loss": quantized_loss,
                "dequantized_loss": masked_loss(model, *batch)[0].item(),
            }
        )
    )


def _leaves(model):
    from mlx.utils import tree_flatten

    return [p for _, p in tree_flatten(model.parameters())]


if __name__ == "__main__":
    main()
