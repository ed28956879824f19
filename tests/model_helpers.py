"""Real model artefacts the tests build: a LoRA adapter with random, nonzero weights."""

from __future__ import annotations

import json
from pathlib import Path


def write_random_adapter(model_dir: Path, out: Path, *, num_layers: int = 4, seed: int = 0) -> Path:
    """A real mlx-lm LoRA adapter for the model, with nonzero weights so it changes the output."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    config = {
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0},
    }
    model, _ = load(str(model_dir))
    model.freeze()
    # Seeded before the LoRA layers exist: their A matrices are drawn from MLX's global
    # generator, and a draw left to chance can leave a short greedy answer unchanged.
    mx.random.seed(seed)
    linear_to_lora_layers(model, num_layers, config["lora_parameters"])
    weights = {
        name: (mx.random.normal(w.shape) * 0.1 if name.endswith("lora_b") else w)
        for name, w in tree_flatten(model.trainable_parameters())
    }
    out.mkdir(parents=True)
    mx.save_safetensors(str(out / "adapters.safetensors"), weights)
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out
