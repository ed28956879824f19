"""Benchmark training on the embedded model: one-pass assistant masking vs per-turn expansion, and
one LoRA training step with the stock vs the fast BLAS.

In one run, each measurement runs in a fresh child process:
- masking (fast BLAS): the same two-turn tool conversations (user, assistant tool call, tool
  result, assistant answer) trained once as whole conversations with every assistant turn masked,
  once as one example per assistant turn (what stock `--mask-prompt` needs). Both train the same
  assistant tokens; reported: tokens processed, wall time, time per trained assistant token.
- BLAS: one LoRA step (masked loss, batch of the same conversations) with the wheel's bundled
  BLAS and with the one `punie.mlx.blas.choose_blas()` preloads.
- cached frozen layers (fast BLAS): LoRA steps (batch 4, max_seq_length 1024) on real generated
  conversations (`punie.data.generate.tasks.generate_tasks` on the installed `rich`), plain (full
  forward from tokens) vs `cache_frozen_layers` (bottom layers run once, top layers per step), for
  num_layers 8 and 4: seconds per step, tokens/s, and the one-off cache-building time.
Prints a table of ratios and writes JSON.

    uv run python tools/bench/train.py [--json tools/bench/train.json] [--conversations 4]
        [--cache-steps 3] [--only cache]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LAYERS = 4
BATCH = 2
LORA = {"rank": 8, "scale": 20.0, "dropout": 0.0}


def conversations(n: int) -> list[dict[str, Any]]:
    """n two-turn tool conversations with the code tools' schema in the system turn."""
    tool = {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file inside the workspace and return its text.",
            "parameters": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Path relative to the root."},
                    "start_line": {"type": "integer", "description": "First line to return."},
                },
                "required": ["path"],
            },
        },
    }
    rows = []
    for i in range(n):
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"What does pkg/mod{i}.py compute?"},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {
                                    "name": "read_file",
                                    "arguments": {"path": f"pkg/mod{i}.py"},
                                },
                            }
                        ],
                    },
                    {
                        "role": "tool",
                        "tool_call_id": "c1",
                        "content": f"def area(side):\n    return side ** {i % 3 + 2}\n",
                    },
                    {
                        "role": "assistant",
                        "content": f"It defines area(side), which returns side to the power "
                        f"{i % 3 + 2}.",
                    },
                ],
                "tools": [tool],
            }
        )
    return rows


# --- workers: run in a child process, print one JSON line ----------------------------------------


def _setup(model_dir: str) -> tuple[Any, Any, Any, Any]:
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from punie.mlx.train.batches import masked_loss

    model, tokenizer = load(model_dir)
    model.freeze()
    linear_to_lora_layers(model, LAYERS, dict(LORA))
    model.train()
    return model, tokenizer, optim.Adam(learning_rate=1e-4), nn.value_and_grad(model, masked_loss)


def _steps(model: Any, optimizer: Any, loss_and_grad: Any, batches: list) -> float:
    import mlx.core as mx

    started = time.perf_counter()
    for tokens, mask in batches:
        (loss, _), grads = loss_and_grad(model, mx.array(tokens), mx.array(mask))
        optimizer.update(model, grads)
        mx.eval(loss, model.parameters(), optimizer.state)
    return time.perf_counter() - started


def _batches(examples: list, batch: int) -> tuple[list, int]:
    from punie.mlx.train.trainer import pack_batch

    ordered = sorted(examples, key=len)
    out, processed = [], 0
    for i in range(0, len(ordered), batch):
        tokens, mask, real = pack_batch(ordered[i : i + batch], 4096, width_multiple=1)
        out.append((tokens, mask))
        processed += real
    return out, processed


def _worker_masking(model_dir: str, n: int) -> dict[str, Any]:
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids, per_turn_examples

    model, tokenizer, optimizer, loss_and_grad = _setup(model_dir)
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    rows = conversations(n)
    one_pass = [assistant_mask(tokenizer, r["messages"], r["tools"], eot) for r in rows]
    per_turn = [
        e for r in rows for e in per_turn_examples(tokenizer, r["messages"], r["tools"], eot)
    ]
    warm, _ = _batches(one_pass[:BATCH], BATCH)
    _steps(model, optimizer, loss_and_grad, warm)  # warm-up: allocations, thread pools
    out: dict[str, Any] = {}
    for name, examples in (("one_pass", one_pass), ("per_turn", per_turn)):
        batches, processed = _batches(examples, BATCH)
        seconds = _steps(model, optimizer, loss_and_grad, batches)
        trained = sum(e.trained_tokens for e in examples)
        out[name] = {
            "examples": len(examples),
            "steps": len(batches),
            "processed_tokens": processed,
            "trained_tokens": trained,
            "seconds": seconds,
            "ms_per_trained_token": 1000 * seconds / trained,
        }
    return out


def _worker_step(model_dir: str, repeats: int) -> dict[str, Any]:
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    model, tokenizer, optimizer, loss_and_grad = _setup(model_dir)
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    rows = conversations(BATCH)
    examples = [assistant_mask(tokenizer, r["messages"], r["tools"], eot) for r in rows]
    batches, processed = _batches(examples, BATCH)
    _steps(model, optimizer, loss_and_grad, batches)  # warm-up
    best = min(_steps(model, optimizer, loss_and_grad, batches) for _ in range(repeats))
    maps = Path("/proc/self/maps")
    loaded = maps.read_text() if maps.exists() else ""
    return {
        "step_s": best,
        "batch_tokens": processed,
        "mkl_loaded": "libmkl_rt" in loaded,
        "openblas_loaded": "libopenblas" in loaded,
    }


CACHE_BATCH = 4
CACHE_MAX_SEQ = 1024
CACHE_LAYERS = (8, 4)


def _generated_examples(count: int) -> list:
    """Masked examples from real generated tasks on the installed `rich` package."""
    import tempfile

    from mlx_lm.utils import load_tokenizer

    from punie.data.generate.tasks import generate_tasks
    from punie.loop.stages import package_source
    from punie.mlx.embedded import embedded_model_dir
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tasks, _ = generate_tasks(
            package_source("rich"), repo_name="rich", limit=count, seed=0, snapshot_dir=Path(tmp)
        )
    tokenizer = load_tokenizer(embedded_model_dir())
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    rows = [t.conversation.to_openai() for t in tasks]
    examples = [assistant_mask(tokenizer, r["messages"], r.get("tools"), eot) for r in rows]
    return [e for e in examples if len(e) <= CACHE_MAX_SEQ]


def _worker_cache(model_dir: str, steps: int) -> dict[str, Any]:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from punie.mlx.train.frozen_cache import CachedLoss, build_cached_split, frozen_cut
    from punie.mlx.train.trainer import MaskedDataset, batch_order, masked_loss

    examples = _generated_examples(CACHE_BATCH * (steps + 1) * 2)
    batches = batch_order(len(examples), CACHE_BATCH, [len(e) for e in examples])
    # The longest batches: what dominates a training run's time.
    batches = batches[-(steps + 1) :]
    plain_set = MaskedDataset(examples)
    out: dict[str, Any] = {
        "examples": len(examples),
        "mean_tokens": sum(len(e) for e in examples) / len(examples),
    }
    for layers in CACHE_LAYERS:
        model, _ = load(model_dir)
        model.freeze()
        linear_to_lora_layers(model, layers, dict(LORA))
        model.train()
        optimizer = optim.Adam(learning_rate=1e-4)
        cut = frozen_cut(model, layers)
        started = time.perf_counter()
        cached_set = build_cached_split(model, examples, cut, CACHE_MAX_SEQ)
        build_s = time.perf_counter() - started
        row: dict[str, Any] = {"cache_build_s": build_s, "cached_mb": cached_set.nbytes / 2**20}
        for name, dataset, loss in (
            ("plain", plain_set, masked_loss),
            ("cached", cached_set, CachedLoss(cut)),
        ):
            loss_and_grad = nn.value_and_grad(model, loss)
            times, tokens = [], 0
            for k, ids in enumerate(batches):
                arrays, real = dataset.batch(ids, CACHE_MAX_SEQ)
                tic = time.perf_counter()
                (value, _), grads = loss_and_grad(model, *arrays)
                optimizer.update(model, grads)
                mx.eval(value, model.parameters(), optimizer.state)
                if k:  # the first step warms up
                    times.append(time.perf_counter() - tic)
                    tokens += real
            row[name] = {"step_s": sum(times) / len(times), "tokens_per_s": tokens / sum(times)}
        row["speedup"] = row["plain"]["step_s"] / row["cached"]["step_s"]
        out[f"num_layers_{layers}"] = row
    return out


QUANT_VARIANTS = ("float", "4bit-dequantized", "4bit-quantized")


def _worker_quantize(model_dir: str) -> dict[str, Any]:
    from punie.mlx.quantize import quantized_copy

    return {"path": str(quantized_copy(Path(model_dir), bits=4, group_size=64))}


def _worker_quant(model_dir: str, variant: str, n: int, steps: int) -> dict[str, Any]:
    """One variant of the issue's run (4 LoRA layers, batch 2, cached frozen layers) on n tool
    conversations: dequantizing time, cache build, seconds per step, the first batch's loss."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from punie.mlx.train.batches import batch_order
    from punie.mlx.train.dequant import dequantize_base, quantized_modules
    from punie.mlx.train.frozen_cache import CachedLoss, build_cached_split, frozen_cut
    from punie.mlx.train.masking import assistant_mask, end_of_turn_ids

    model, tokenizer = load(model_dir)
    quantized = len(quantized_modules(model))
    tic = time.perf_counter()
    if variant == "4bit-dequantized":
        assert dequantize_base(model, fine_tune_type="lora") is not None
    dequantize_s = time.perf_counter() - tic
    model.freeze()
    mx.random.seed(0)
    linear_to_lora_layers(model, LAYERS, dict(LORA))
    model.train()
    eot = end_of_turn_ids(tokenizer, ["<|im_end|>"])
    examples = [assistant_mask(tokenizer, r["messages"], r["tools"], eot) for r in conversations(n)]
    cut = frozen_cut(model, LAYERS)
    tic = time.perf_counter()
    split = build_cached_split(model, examples, cut, CACHE_MAX_SEQ)
    build_s = time.perf_counter() - tic
    order = batch_order(len(examples), BATCH, [len(e) for e in examples])
    optimizer = optim.Adam(learning_rate=1e-4)
    loss_and_grad = nn.value_and_grad(model, CachedLoss(cut))
    times, tokens, first_loss = [], 0, None
    for k in range(steps + 1):
        arrays, real = split.batch(order[k % len(order)], CACHE_MAX_SEQ)
        tic = time.perf_counter()
        (value, _), grads = loss_and_grad(model, *arrays)
        optimizer.update(model, grads)
        mx.eval(value, model.parameters(), optimizer.state)
        if first_loss is None:
            first_loss = value.item()  # zero-initialised lora_b: the base model's loss
        else:  # the first step warms up
            times.append(time.perf_counter() - tic)
            tokens += real
    return {
        "quantized_modules": quantized,
        "left_quantized": len(quantized_modules(model)),
        "dequantize_s": dequantize_s,
        "cache_build_s": build_s,
        "cached_tokens": split.computed_tokens,
        "cache_ms_per_token": 1000 * build_s / split.computed_tokens,
        "step_s": sum(times) / len(times),
        "tokens_per_s": tokens / sum(times),
        "first_loss": first_loss,
        "peak_mb": mx.get_peak_memory() / 2**20,
    }


def _quant_section(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The three variants in fresh children, interleaved over rounds (the quantized one, 20x
    slower and so far above the noise, in the first round only); the median of each."""
    q4 = _child("quantize", env, args)["path"]
    models = {"float": args.model, "4bit-dequantized": q4, "4bit-quantized": q4}
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in QUANT_VARIANTS}
    for r in range(args.quant_rounds):
        for variant in QUANT_VARIANTS:
            if variant == "4bit-quantized" and r:
                continue
            runs[variant].append(_child("quant", env, args, variant=variant, model=models[variant]))
    out: dict[str, Any] = {"conversations": args.quant_conversations, "rounds": args.quant_rounds}
    for variant, got in runs.items():
        row = {k: statistics.median(g[k] for g in got) for k in got[0]}
        out[variant] = {**row, "runs": len(got)}
    deq, raw, flt = out["4bit-dequantized"], out["4bit-quantized"], out["float"]
    out["ratios"] = {
        "cache_build_speedup": raw["cache_ms_per_token"] / deq["cache_ms_per_token"],
        "step_speedup": raw["step_s"] / deq["step_s"],
        "dequantized_over_float_step": deq["step_s"] / flt["step_s"],
        "loss_rel_diff_dequantized_vs_quantized": abs(deq["first_loss"] - raw["first_loss"])
        / raw["first_loss"],
    }
    return out


def _print_quant(console: Any, quant: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"QLoRA on CPU: {LAYERS} LoRA layers, batch {BATCH}, cached frozen layers, "
        f"{quant['conversations']} tool conversations (median of {quant['rounds']} rounds)"
    )
    for col in ("variant", "dequantize (s)", "cache build (s)", "cache ms/token", "s/step",
                "tok/s", "first loss", "peak MB"):  # fmt: skip
        table.add_column(col, justify="right" if col != "variant" else "left")
    for variant in QUANT_VARIANTS:
        row = quant[variant]
        table.add_row(
            f"{variant} ({row['runs']} run{'s' if row['runs'] > 1 else ''})",
            f"{row['dequantize_s']:.2f}",
            f"{row['cache_build_s']:.1f}",
            f"{row['cache_ms_per_token']:.1f}",
            f"{row['step_s']:.2f}",
            f"{row['tokens_per_s']:.0f}",
            f"{row['first_loss']:.5f}",
            f"{row['peak_mb']:.0f}",
        )
    console.print(table)
    r = quant["ratios"]
    console.print(
        f"dequantized vs quantized 4-bit: cache build {r['cache_build_speedup']:.1f}x faster, "
        f"step {r['step_speedup']:.1f}x faster, loss differs by "
        f"{r['loss_rel_diff_dequantized_vs_quantized']:.1e} (relative); dequantized step "
        f"{r['dequantized_over_float_step']:.2f}x the float model's"
    )


# --- parent ---------------------------------------------------------------------------------------


def _child(
    kind: str,
    env: dict[str, str],
    args: argparse.Namespace,
    *,
    variant: str = "",
    model: str | None = None,
) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, "--model", model or args.model]
    command += ["--conversations", str(args.conversations), "--repeats", str(args.repeats)]
    command += ["--cache-steps", str(args.cache_steps), "--variant", variant]
    command += ["--quant-conversations", str(args.quant_conversations)]
    command += ["--quant-steps", str(args.quant_steps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("tools/bench/train.json"))
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache-steps", type=int, default=3)
    parser.add_argument("--quant-rounds", type=int, default=2)
    parser.add_argument("--quant-conversations", type=int, default=4)
    parser.add_argument("--quant-steps", type=int, default=2)
    parser.add_argument("--only", choices=["cache", "quant"], help="run only that section")
    parser.add_argument(
        "--worker",
        choices=["masking", "step", "cache", "quantize", "quant"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = {
            "masking": lambda: _worker_masking(args.model, args.conversations),
            "step": lambda: _worker_step(args.model, args.repeats),
            "cache": lambda: _worker_cache(args.model, args.cache_steps),
            "quantize": lambda: _worker_quantize(args.model),
            "quant": lambda: _worker_quant(
                args.model, args.variant, args.quant_conversations, args.quant_steps
            ),
        }[args.worker]
        print(json.dumps(work()))
        return

    from rich.console import Console
    from rich.table import Table

    from punie.mlx.blas import REFERENCE_NAME, BlasChoice, child_env, choose_blas

    if args.model is None:
        from punie.mlx.embedded import embedded_model_dir

        args.model = str(embedded_model_dir())
    fast = choose_blas()
    stock_env = child_env(BlasChoice(REFERENCE_NAME, None, {}))
    stock_env.pop("LD_PRELOAD", None)
    console = Console()
    console.print(f"{_machine()} BLAS: {fast.name} ({fast.gflops} GFLOP/s)")
    if args.only == "quant":
        with console.status("QLoRA: float vs 4-bit dequantized vs 4-bit quantized (fast BLAS)"):
            quant = _quant_section(args, child_env(fast))
        _print_quant(console, quant)
        _write(args.json, {"machine": _machine(), "blas": fast.name, "quant": quant})
        console.print(f"wrote {args.json}")
        return
    with console.status("cached frozen layers vs plain (fast BLAS)"):
        cache = _child("cache", child_env(fast), args)
    _print_cache(console, cache)
    if args.only == "cache":
        _write(args.json, {"machine": _machine(), "model": args.model, "cache": cache})
        console.print(f"wrote {args.json}")
        return
    with console.status("one-pass vs per-turn (fast BLAS)"):
        masking = _child("masking", child_env(fast), args)
    with console.status("one LoRA step, fast BLAS"):
        step_fast = _child("step", child_env(fast), args)
    with console.status("one LoRA step, stock BLAS"):
        step_stock = _child("step", stock_env, args)
    with console.status("QLoRA: float vs 4-bit dequantized vs 4-bit quantized (fast BLAS)"):
        quant = _quant_section(args, child_env(fast))

    one, per = masking["one_pass"], masking["per_turn"]
    ratios = {
        "per_turn_over_one_pass_processed_tokens": per["processed_tokens"]
        / one["processed_tokens"],
        "one_pass_speedup_per_trained_token": per["ms_per_trained_token"]
        / one["ms_per_trained_token"],
        "fast_blas_speedup_step": step_stock["step_s"] / step_fast["step_s"],
    }
    table = Table(
        title=f"training on {Path(args.model).name} ({LAYERS} LoRA layers, batch {BATCH})"
    )
    for col in ("measure", "one-pass", "per-turn", "ratio"):
        table.add_column(col, justify="right" if col != "measure" else "left")
    table.add_row("examples", str(one["examples"]), str(per["examples"]), "")
    table.add_row(
        "tokens processed",
        f"{one['processed_tokens']:,}",
        f"{per['processed_tokens']:,}",
        f"{ratios['per_turn_over_one_pass_processed_tokens']:.2f}x",
    )
    table.add_row(
        "assistant tokens trained", str(one["trained_tokens"]), str(per["trained_tokens"]), ""
    )
    table.add_row("wall time (s)", f"{one['seconds']:.2f}", f"{per['seconds']:.2f}", "")
    table.add_row(
        "ms per trained token",
        f"{one['ms_per_trained_token']:.1f}",
        f"{per['ms_per_trained_token']:.1f}",
        f"{ratios['one_pass_speedup_per_trained_token']:.2f}x faster",
    )
    console.print(table)
    blas = Table(title="one LoRA step (masked loss)")
    for col in ("BLAS", "step (s)", "speed-up"):
        blas.add_column(col)
    blas.add_row(REFERENCE_NAME, f"{step_stock['step_s']:.2f}", "1.00x")
    blas.add_row(
        fast.name, f"{step_fast['step_s']:.2f}", f"{ratios['fast_blas_speedup_step']:.2f}x"
    )
    console.print(blas)
    _print_quant(console, quant)
    body = {
        "machine": _machine(),
        "model": args.model,
        "layers": LAYERS,
        "batch": BATCH,
        "masking": masking,
        "step": {"stock": {"blas": REFERENCE_NAME, **step_stock},
                 "fast": {"blas": fast.name, **step_fast}},
        "ratios": ratios,
        "target_met": ratios["one_pass_speedup_per_trained_token"] >= 1.5,
        "cache": cache,
        "quant": quant,
    }  # fmt: skip
    _write(args.json, body)
    console.print(f"wrote {args.json}")


def _machine() -> dict[str, Any]:
    from punie.mlx.machine import cpu_model, load_average

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "load_average": load_average(),
    }


def _write(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")


def _print_cache(console: Any, cache: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"LoRA step, plain vs cached frozen layers (batch {CACHE_BATCH}, "
        f"{cache['examples']} generated conversations, mean {cache['mean_tokens']:.0f} tokens)"
    )
    for col in ("num_layers", "plain s/step", "cached s/step", "plain tok/s", "cached tok/s",
                "speed-up", "cache build (s)"):  # fmt: skip
        table.add_column(col, justify="right")
    for layers in CACHE_LAYERS:
        row = cache[f"num_layers_{layers}"]
        table.add_row(
            str(layers),
            f"{row['plain']['step_s']:.2f}",
            f"{row['cached']['step_s']:.2f}",
            f"{row['plain']['tokens_per_s']:.0f}",
            f"{row['cached']['tokens_per_s']:.0f}",
            f"{row['speedup']:.2f}x",
            f"{row['cache_build_s']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
