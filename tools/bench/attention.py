"""MLX's CPU attention vs Punie's blocked causal attention (`punie.mlx.attention`), side by side.

In one child process with the chosen BLAS preloaded, on the embedded model, each measured with
MLX's own attention and with the blocked one, same inputs:
- one decoder layer's forward at 350, 700 and 1,400 tokens (batch 4, 4, 1);
- the frozen-layer cache's pass (the bottom 22 layers over one 1,400-token example);
- one LoRA training step on the cached top 8 layers (batch 4 of 700-token rows, value and grad
  of `CachedLoss`, the demo's recipe shape), with the loss of both compared.
Prints milliseconds and the ratio for each, and writes JSON.

    uv run python tools/bench/attention.py [--json tools/bench/attention.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _timed(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1000


def _worker(model_dir: str, repeats: int) -> dict[str, Any]:
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import load
    from mlx_lm.models.base import create_attention_mask
    from mlx_lm.models.cache import KVCache
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from punie.mlx import attention
    from punie.mlx.train.frozen_cache import CachedLoss, frozen_cut, top_states

    model, _ = load(model_dir)
    model.freeze()
    linear_to_lora_layers(model, 8, {"rank": 16, "scale": 20.0, "dropout": 0.0})
    model.train()
    cut = frozen_cut(model, 8)
    dim = model.model.norm.weight.shape[0]
    mx.random.seed(0)
    cases: dict[str, Any] = {}

    def layer_case(tokens: int, batch: int) -> Any:
        h = mx.random.normal((batch, tokens, dim)) * 0.1
        layer = model.model.layers[0]
        return lambda: mx.eval(layer(h, create_attention_mask(h, None), None))

    def bottom_case() -> Any:
        tokens = mx.random.randint(0, 40000, (1, 1400))

        def run() -> None:
            caches = [KVCache() for _ in range(cut)]
            h = model.model.embed_tokens(tokens)
            mask = create_attention_mask(h, caches[0])
            for layer, cache in zip(model.model.layers[:cut], caches, strict=True):
                h = layer(h, mask, cache)
            mx.eval(h)

        return run

    rows, prefix_len, suffix_len = 4, 300, 400
    prefix = mx.random.normal((1, prefix_len, dim)) * 0.1
    suffix = mx.random.normal((rows, suffix_len, dim)) * 0.1
    picked = mx.random.randint(0, prefix_len + rows * suffix_len, (512,)).astype(mx.int32)
    targets = mx.random.randint(0, 40000, (512,)).astype(mx.int32)
    weights = mx.ones((512,))
    loss_and_grad = nn.value_and_grad(model, CachedLoss(cut))
    losses: dict[str, float] = {}

    def step(label: str) -> Any:
        def run() -> None:
            (loss, _), grads = loss_and_grad(model, prefix, suffix, picked, targets, weights)
            mx.eval(loss, grads)
            losses[label] = loss.item()

        return run

    def states(label: str) -> Any:
        return lambda: mx.eval(top_states(model, prefix, suffix, cut))

    work = {
        "layer forward, 350 tokens x 4": lambda _: layer_case(350, 4),
        "layer forward, 700 tokens x 4": lambda _: layer_case(700, 4),
        "layer forward, 1400 tokens x 1": lambda _: layer_case(1400, 1),
        "frozen-cache pass, 22 layers, 1400 tokens": lambda _: bottom_case(),
        "top 8 layers forward (cached rows)": states,
        "LoRA step, top 8 layers (value and grad)": step,
    }
    for name, make in work.items():
        row = {}
        for label in ("stock", "blocked"):
            if label == "blocked":
                attention.install({})
            else:
                attention.uninstall()
            row[label] = _timed(make(label), repeats)
        attention.uninstall()
        row["ratio"] = row["stock"] / row["blocked"]
        cases[name] = row
    return {"cases": cases, "step_losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("tools/bench/attention.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.model, args.repeats)))
        return

    from rich.console import Console
    from rich.table import Table

    from punie.mlx.blas import child_env, choose_blas
    from punie.mlx.embedded import embedded_model_dir
    from punie.mlx.machine import cpu_model

    model = args.model or str(embedded_model_dir())
    blas = choose_blas()
    console = Console()
    machine = {"cpu": cpu_model(), "blas": blas.name, "blas_gflops": blas.gflops}
    console.print(f"CPU: {machine['cpu']}; BLAS: {blas.name} ({blas.gflops} GFLOP/s)")
    command = [sys.executable, __file__, "--worker", "--model", model]
    command += ["--repeats", str(args.repeats)]
    with console.status("stock vs blocked attention"):
        done = subprocess.run(
            command, env=child_env(blas), capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise SystemExit(f"worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    table = Table(title="MLX attention on the CPU: stock vs blocked causal (ms)")
    for column in ("case", "stock", "blocked", "stock / blocked"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, row in result["cases"].items():
        table.add_row(name, f"{row['stock']:.0f}", f"{row['blocked']:.0f}", f"{row['ratio']:.2f}x")
    console.print(table)
    console.print(f"LoRA step loss, stock vs blocked: {result['step_losses']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, **result}, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
