"""Benchmark MLX on Linux CPU with the wheel's bundled BLAS vs the BLAS Punie preloads.

In one run, each measurement runs in a fresh child process, once with the stock environment and
once with `punie.mlx.blas.child_env(choose_blas())`: a 2048² float32 matmul (GFLOP/s), prompt
processing and generation on the embedded SmolLM2 model (tok/s), and one LoRA training step
(8 layers, batch 4 x 480 tokens; seconds). Prints a table with the ratios and writes JSON.

    uv run python tools/bench/mlx_blas.py [--json tools/bench/mlx_blas.json] [--skip-train]

The stock LoRA step dominates the run (minutes on 2 cores: 557 s on a busy 2-core host, where the
fast one took 48 s); `--skip-train` leaves it out. Multi-threaded BLAS suffers most from other
load on the host, so run it on a quiet machine when the ratios matter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MATMUL_N = 2048
PROMPT_TOKENS = 256
GENERATE_TOKENS = 32
TRAIN_LAYERS = 8
TRAIN_BATCH = 4
TRAIN_TOKENS = 480


# --- workers: run in a child process, print one JSON line ----------------------------------------


def _worker_matmul(repeats: int) -> dict[str, Any]:
    import mlx.core as mx

    a = mx.random.normal((MATMUL_N, MATMUL_N))
    b = mx.random.normal((MATMUL_N, MATMUL_N))
    mx.eval(a @ b)  # warm-up: thread pools, first-touch of the buffers
    started = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ b)
    seconds = (time.perf_counter() - started) / repeats
    return {"matmul_gflops": 2 * MATMUL_N**3 / seconds / 1e9, "matmul_repeats": repeats}


def _worker_generate(model_dir: str, repeats: int) -> dict[str, Any]:
    import mlx.core as mx
    from mlx_lm import load, stream_generate

    model, tokenizer = load(model_dir)
    text = Path(__file__).read_text() * 4
    prompt = tokenizer.encode(text)[:PROMPT_TOKENS]
    eos = list(tokenizer.eos_token_ids)

    def no_eos(tokens: mx.array, logits: mx.array) -> mx.array:
        # Generate exactly GENERATE_TOKENS tokens, whatever the model would rather do.
        logits[:, eos] = -1e9
        return logits

    best: dict[str, float] = {"prompt_tps": 0.0, "generation_tps": 0.0}
    for _ in range(repeats):
        last = None
        for last in stream_generate(  # noqa: B007 (the last response holds the totals)
            model, tokenizer, prompt, max_tokens=GENERATE_TOKENS, logits_processors=[no_eos]
        ):
            pass
        assert last is not None
        best["prompt_tps"] = max(best["prompt_tps"], last.prompt_tps)
        best["generation_tps"] = max(best["generation_tps"], last.generation_tps)
    return {**best, "prompt_tokens": len(prompt), "generation_tokens": GENERATE_TOKENS}


def _worker_train(model_dir: str, steps: int) -> dict[str, Any]:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = load(model_dir)
    model.freeze()
    linear_to_lora_layers(model, TRAIN_LAYERS, {"rank": 8, "scale": 20.0, "dropout": 0.0})
    model.train()
    optimizer = optim.Adam(learning_rate=2e-4)
    mx.random.seed(0)
    vocab = tokenizer.vocab_size
    batch = mx.random.randint(0, vocab, (TRAIN_BATCH, TRAIN_TOKENS + 1))
    lengths = mx.array([[0, TRAIN_TOKENS]] * TRAIN_BATCH)
    loss_and_grad = nn.value_and_grad(model, default_loss)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        (loss, _), grads = loss_and_grad(model, batch, lengths)
        optimizer.update(model, grads)
        mx.eval(loss, model.parameters(), optimizer.state)
        times.append(time.perf_counter() - started)
    # With more than one step, the first (allocations, warm-up) is left out.
    kept = times[1:] or times
    return {"train_step_s": min(kept), "train_steps": steps, "train_loss": loss.item()}


def _run_worker(args: argparse.Namespace) -> None:
    if args.worker == "matmul":
        result = _worker_matmul(args.repeats)
    elif args.worker == "generate":
        result = _worker_generate(args.model, args.repeats)
    else:
        result = _worker_train(args.model, args.repeats)
    maps = Path("/proc/self/maps")
    loaded = maps.read_text() if maps.exists() else ""
    result["mkl_loaded"] = "libmkl_rt" in loaded
    result["openblas_loaded"] = "libopenblas" in loaded
    print(json.dumps(result))


# --- parent: run the workers in both environments, report -----------------------------------------


def _measure(kind: str, env: dict[str, str], repeats: int, model: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, "--repeats", str(repeats)]
    command += ["--model", model]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    parser.add_argument("--stock-repeats", type=int, default=1, help="Stock runs are slow.")
    parser.add_argument("--fast-repeats", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true", help="Leave out the LoRA step.")
    parser.add_argument("--worker", choices=["matmul", "generate", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _run_worker(args)
        return

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from punie.mlx.blas import child_env, choose_blas
    from punie.mlx.embedded import embedded_model_dir

    console = Console()
    fast_choice = choose_blas()
    envs = {
        "stock": child_env(choose_blas(enabled=False)),
        "fast": child_env(fast_choice),
    }
    model = str(embedded_model_dir())
    kinds = ["matmul", "generate"] + ([] if args.skip_train else ["train"])
    # Training has a warm-up step that is left out, so the fast run does two.
    repeats = {
        "stock": {
            "matmul": max(2, args.stock_repeats),
            "generate": args.stock_repeats,
            "train": args.stock_repeats,
        },
        "fast": {"matmul": 10 * args.fast_repeats, "generate": args.fast_repeats, "train": 2},
    }
    results: dict[str, dict[str, Any]] = {"stock": {}, "fast": {}}
    wall: dict[str, dict[str, float]] = {"stock": {}, "fast": {}}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(kinds) * 2)
        for kind in kinds:
            for name in ("fast", "stock"):
                progress.update(task, description=f"{kind} ({name} BLAS)")
                started = time.perf_counter()
                measured = _measure(kind, envs[name], repeats[name][kind], model)
                wall[name][kind] = round(time.perf_counter() - started, 1)
                loaded = {k: measured.pop(k) for k in ("mkl_loaded", "openblas_loaded")}
                results[name].update(measured)
                results[name].setdefault("loaded", {})[kind] = loaded
                progress.advance(task)

    rows = [
        ("matmul 2048² f32", "matmul_gflops", "GFLOP/s", False, 20.0),
        (f"prompt processing ({PROMPT_TOKENS} tok)", "prompt_tps", "tok/s", False, 8.0),
        (f"generation ({GENERATE_TOKENS} tok)", "generation_tps", "tok/s", False, None),
    ]
    if not args.skip_train:
        label = f"LoRA step ({TRAIN_LAYERS} layers, {TRAIN_BATCH}x{TRAIN_TOKENS} tok)"
        rows.append((label, "train_step_s", "s", True, 8.0))
    table = Table(title=f"MLX on {platform.machine()} CPU: bundled BLAS vs {fast_choice.name}")
    for column in ("measure", "stock", fast_choice.name, "speed-up", "target"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    ratios: dict[str, float] = {}
    for label, key, unit, lower_is_better, target in rows:
        stock, fast = results["stock"][key], results["fast"][key]
        ratio = stock / fast if lower_is_better else fast / stock
        ratios[key] = round(ratio, 2)
        verdict = (
            "" if target is None else f">= {target:g}x " + ("ok" if ratio >= target else "MISSED")
        )
        table.add_row(label, f"{stock:.1f} {unit}", f"{fast:.1f} {unit}", f"{ratio:.1f}x", verdict)
    console.print(table)
    console.print(f"fast BLAS library: {fast_choice.library} env: {fast_choice.env}")

    report = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "blas": {
            "name": fast_choice.name,
            "library": str(fast_choice.library),
            "env": fast_choice.env,
        },
        "model": model,
        "settings": {
            "matmul_n": MATMUL_N,
            "prompt_tokens": PROMPT_TOKENS,
            "generate_tokens": GENERATE_TOKENS,
            "train_layers": TRAIN_LAYERS,
            "train_batch": TRAIN_BATCH,
            "train_tokens": TRAIN_TOKENS,
            "repeats": repeats,
        },
        "stock": results["stock"],
        "fast": results["fast"],
        "ratios": ratios,
        "wall_s": wall,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
