"""Benchmark MLX on Linux CPU: every BLAS candidate side by side, then stock vs the chosen one.

Part 1 times float32 matmuls through MLX (1024², the size Punie's verdict measures, and 2048²)
in a fresh child per candidate present (system OpenBLAS, the ngsolve-openblas wheel, MKL where
installed, the bundled reference BLAS), each verified against numpy, in interleaved rounds (the
order rotates), and reports the median, the spread and the kernel each runs; it checks that the
BLAS Punie chose is within 90% of the fastest at each size.
Part 2 compares the stock environment with `child_env(choose_blas())`: prompt processing and
generation on the embedded SmolLM2 model (tok/s) and one LoRA training step (8 layers; seconds).
Every report names the CPU, its load average and the BLAS. Prints tables and writes JSON.

    uv run python tools/bench/mlx_blas.py [--rounds 3] [--skip-generate] [--skip-train]
        [--train-batch 1 --train-tokens 240] [--json tools/bench/mlx_blas.json]

The defaults run in a few minutes on 2 cores; the stock LoRA step dominates (`--train-batch 4
--train-tokens 480`, the earlier setting, takes ~10 minutes stock on a busy 2-core host).
Multi-threaded BLAS suffers most from other load on the host: run it on a quiet machine when the
ratios matter, and read the load average printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MATMUL_N = 2048
PROMPT_TOKENS = 256
GENERATE_TOKENS = 32
TRAIN_LAYERS = 8
WITHIN = 0.9


# --- workers: run in a child process, print one JSON line ----------------------------------------


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


def _worker_train(model_dir: str, steps: int, batch_size: int, tokens: int) -> dict[str, Any]:
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
    batch = mx.random.randint(0, vocab, (batch_size, tokens + 1))
    lengths = mx.array([[0, tokens]] * batch_size)
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
    if args.worker == "generate":
        result = _worker_generate(args.model, args.repeats)
    else:
        result = _worker_train(args.model, args.repeats, args.train_batch, args.train_tokens)
    maps = Path("/proc/self/maps")
    loaded = maps.read_text().splitlines() if maps.exists() else []
    names = (Path(line.split()[-1]).name for line in loaded if line.split()[-1].startswith("/"))
    result["blas_mapped"] = sorted({n for n in names if "mkl_rt" in n or "openblas" in n})
    print(json.dumps(result))


# --- parent ---------------------------------------------------------------------------------


def _run(command: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(kind: str, env: dict[str, str], args: argparse.Namespace, repeats: int) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--repeats", str(repeats)]
    command += ["--model", args.model, "--train-batch", str(args.train_batch)]
    command += ["--train-tokens", str(args.train_tokens)]
    return _run(command, env, f"{kind} worker")


def _load() -> str:
    load = os.getloadavg()
    return f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def compare_candidates(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    """Part 1: every candidate's matmul (the verdict's 1024² and 2048²) in interleaved rounds,
    each verified against numpy; the chosen one's median against the fastest, per size."""
    from rich.table import Table

    from punie.mlx.blas import BlasChoice, blas_candidates, blas_verdict, child_env
    from punie.mlx.blas_probe import MATMUL_N as VERDICT_N
    from punie.mlx.blas_probe import TOLERANCE, kernel_summary

    sizes = (VERDICT_N, MATMUL_N)
    candidates = blas_candidates()
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "PUNIE_BLAS")}
    runs: dict[int, dict[str, list[float]]] = {n: {c.key: [] for c in candidates} for n in sizes}
    info: dict[str, dict[str, Any]] = {}
    loads = [_load()]
    for round_ in range(args.rounds):
        shift = round_ % len(candidates)
        for c in candidates[shift:] + candidates[:shift]:
            env = child_env(BlasChoice(c.name, c.library, c.env), base)
            for n in sizes:
                command = [sys.executable, "-m", "punie.mlx.blas_probe", str(n), "1.0"]
                result = _run(command, env, f"matmul with {c.key}")
                assert result["max_error"] <= TOLERANCE, (c.key, result["max_error"])
                runs[n][c.key].append(result["gflops"])
            info[c.key] = {
                "kernel": kernel_summary(result["kernel"]) or "bundled reference BLAS",
                "library": str(c.library or ""),
            }
        loads.append(_load())
    medians = {n: {k: statistics.median(v) for k, v in runs[n].items()} for n in sizes}
    fastest = {n: max(medians[n], key=medians[n].__getitem__) for n in sizes}
    chosen = blas_verdict(override=None).chosen.key
    ratio = {n: medians[n][chosen] / medians[n][fastest[n]] for n in sizes}
    table = Table(title=f"MLX float32 matmul, {args.rounds} interleaved rounds, GFLOP/s")
    table.add_column("candidate")
    for n in sizes:
        table.add_column(f"{n}² median", justify="right")
        table.add_column("runs", justify="right")
        table.add_column("vs fastest", justify="right")
    table.add_column("kernel")
    for c in candidates:
        cells = [c.key + (" (chosen)" if c.key == chosen else "")]
        for n in sizes:
            median = medians[n][c.key]
            cells += [f"{median:.1f}", " ".join(f"{g:.0f}" for g in runs[n][c.key])]
            cells.append(f"{median / medians[n][fastest[n]]:.0%}")
        table.add_row(*cells, info[c.key]["kernel"])
    console.print(table)
    for n in sizes:
        verdict = "ok" if ratio[n] >= WITHIN else "MISSED"
        console.print(
            f"{n}²: chosen {chosen} is {ratio[n]:.0%} of the fastest ({fastest[n]}); "
            f"target >= {WITHIN:.0%} {verdict}",
            highlight=False,
        )
    console.print(f"load average per round: {' | '.join(loads)}", highlight=False)
    return {
        "sizes": sizes,
        "gflops": runs,
        "median_gflops": medians,
        "fastest": fastest,
        "chosen": chosen,
        "chosen_vs_fastest": {n: round(r, 3) for n, r in ratio.items()},
        "candidates": info,
        "load_average": loads,
    }


def compare_stock(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    """Part 2: prompt processing, generation and a LoRA step, stock vs the chosen BLAS."""
    from rich.table import Table

    from punie.mlx.blas import child_env, choose_blas

    choice = choose_blas()
    envs = {"stock": child_env(choose_blas(enabled=False)), "fast": child_env(choice)}
    kinds = ([] if args.skip_generate else ["generate"]) + ([] if args.skip_train else ["train"])
    # Training has a warm-up step that is left out, so the fast run does two.
    repeats = {
        "stock": {"generate": args.stock_repeats, "train": args.stock_repeats},
        "fast": {"generate": args.fast_repeats, "train": 2},
    }
    results: dict[str, dict[str, Any]] = {"stock": {}, "fast": {}}
    wall: dict[str, dict[str, float]] = {"stock": {}, "fast": {}}
    loads = [_load()]
    for kind in kinds:
        for name in ("fast", "stock"):
            console.print(f"{kind} ({name} BLAS) ...", highlight=False)
            started = time.perf_counter()
            measured = _worker(kind, envs[name], args, repeats[name][kind])
            wall[name][kind] = round(time.perf_counter() - started, 1)
            results[name].setdefault("blas_mapped", {})[kind] = measured.pop("blas_mapped")
            results[name].update(measured)
            loads.append(_load())
    rows = []
    if not args.skip_generate:
        rows += [
            (f"prompt processing ({PROMPT_TOKENS} tok)", "prompt_tps", "tok/s", False),
            (f"generation ({GENERATE_TOKENS} tok)", "generation_tps", "tok/s", False),
        ]
    if not args.skip_train:
        label = f"LoRA step ({TRAIN_LAYERS} layers, {args.train_batch}x{args.train_tokens} tok)"
        rows.append((label, "train_step_s", "s", True))
    table = Table(title=f"MLX: bundled BLAS vs {choice.name}")
    for column in ("measure", "stock", choice.key, "speed-up"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    ratios: dict[str, float] = {}
    for label, key, unit, lower_is_better in rows:
        stock, fast = results["stock"][key], results["fast"][key]
        ratio = stock / fast if lower_is_better else fast / stock
        ratios[key] = round(ratio, 2)
        table.add_row(label, f"{stock:.1f} {unit}", f"{fast:.1f} {unit}", f"{ratio:.1f}x")
    if rows:
        console.print(table)
        console.print(f"load average: {' | '.join(loads)}", highlight=False)
    return {
        "blas": {
            "key": choice.key,
            "name": choice.name,
            "library": str(choice.library),
            "env": choice.env,
            "kernel": choice.kernel,
        },
        "stock": results["stock"],
        "fast": results["fast"],
        "ratios": ratios,
        "wall_s": wall,
        "load_average": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved matmul rounds.")
    parser.add_argument("--stock-repeats", type=int, default=1, help="Stock runs are slow.")
    parser.add_argument("--fast-repeats", type=int, default=3)
    parser.add_argument("--skip-generate", action="store_true", help="Leave out generation.")
    parser.add_argument("--skip-train", action="store_true", help="Leave out the LoRA step.")
    parser.add_argument("--train-batch", type=int, default=1)
    parser.add_argument("--train-tokens", type=int, default=240)
    parser.add_argument("--worker", choices=["generate", "train"], help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _run_worker(args)
        return

    from rich.console import Console

    from punie.logs import configure_logging
    from punie.mlx import machine

    configure_logging(level="WARNING")
    console = Console(width=max(120, Console().width))
    about = machine.describe()
    console.print(
        f"CPU: {about['cpu_signature']}, {about['cpus']} CPUs; load average {_load()}",
        highlight=False,
    )
    if not args.skip_generate or not args.skip_train:
        from punie.mlx.embedded import embedded_model_dir

        args.model = str(embedded_model_dir())
    report: dict[str, Any] = {"machine": about, "matmul_n": MATMUL_N}
    report["candidates"] = compare_candidates(args, console)
    report["stock_vs_chosen"] = compare_stock(args, console)
    report["settings"] = {
        "prompt_tokens": PROMPT_TOKENS,
        "generate_tokens": GENERATE_TOKENS,
        "train_layers": TRAIN_LAYERS,
        "train_batch": args.train_batch,
        "train_tokens": args.train_tokens,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
